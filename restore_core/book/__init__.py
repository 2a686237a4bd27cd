"""Support for the executable book: chapter profiles and headers, stored results, the papermill runner."""
from .chapter import ChapterRun, resolve_profile, start_chapter
from .results import load_results, ordering_agreement, results_path, save_results

__all__ = ["ChapterRun", "resolve_profile", "start_chapter", "load_results", "ordering_agreement",
           "results_path", "save_results"]
