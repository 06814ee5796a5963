"""taskiq's ``depends.progress_tracker`` path: `ProgressTracker`, `TaskProgress`, `TaskState`."""

from taskq.progress import ProgressTracker, TaskProgress, TaskState

__all__ = ["ProgressTracker", "TaskProgress", "TaskState"]
