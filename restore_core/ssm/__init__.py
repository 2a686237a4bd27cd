"""State-space model core: discretization, the selective scan and its backends, 2D scan orders, SS2D."""
from .scan import ScanBackend, list_backends, register_backend, selective_scan, selective_scan_ref

__all__ = ["ScanBackend", "list_backends", "register_backend", "selective_scan", "selective_scan_ref"]
