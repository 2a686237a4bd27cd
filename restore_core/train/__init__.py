"""Training: configs (BasicSR-style YAML), losses, the training loop, evaluation and distributed training.

The Python API the book chapters use::

    from restore_core.train import load_config, train, evaluate
    cfg = load_config("mambair/sr_x2", profile="quick", overrides=["train.total_iter=200"])
    result = train(cfg, out_dir="runs/sr_x2")           # -> TrainResult(history, final_metrics, ...)

In-memory ablations: ``train(cfg, model=my_variant, train_set=ds, val_set=val, save_checkpoints=False)``.
Multi-GPU: ``restore-core train mambair/sr_x2 --profile full --nproc 8`` or :func:`launch_train`.
"""
from .checkpoint import latest_checkpoint, load_checkpoint
from .distributed import launch_train, torchrun_command
from .config import ConfigError, TrainConfig, config_from_dict, list_configs, load_config
from .evaluate import EvalResult, evaluate, evaluate_checkpoint, write_results
from .losses import LOSSES, CharbonnierLoss, FFTLoss, FusionLoss, L1Loss, MSELoss, build_loss
from .trainer import NonFiniteLossError, Trainer, TrainResult, train

__all__ = ["launch_train", "torchrun_command", "ConfigError", "TrainConfig", "config_from_dict", "list_configs",
           "load_config", "latest_checkpoint",
           "load_checkpoint", "EvalResult", "evaluate", "evaluate_checkpoint", "write_results", "LOSSES",
           "CharbonnierLoss", "FFTLoss", "FusionLoss", "L1Loss", "MSELoss", "build_loss", "NonFiniteLossError",
           "Trainer", "TrainResult", "train"]
