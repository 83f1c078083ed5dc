"""Widgets for notebooks inside a naic-hub session (ipywidgets 8).

    from naic.extensions.widgets import SessionPanel, StorageOverview, GPUMonitor
    SessionPanel()

Each takes its data source in the constructor (the real one by default, see the modules of
`naic.extensions.sources`, and `naic.extensions.session` for the session's facts) and has
`refresh()`. CSS classes `naic-…` name their parts.
"""

from naic.extensions.widgets.budget import ProjectBudget
from naic.extensions.widgets.dask_launcher import DaskLauncher
from naic.extensions.widgets.data_staging import DataStaging
from naic.extensions.widgets.environments import OwnEnvironments
from naic.extensions.widgets.gpu_monitor import GPUMonitor
from naic.extensions.widgets.onboarding import OnboardingChecklist, mark_done
from naic.extensions.widgets.session_panel import SessionPanel
from naic.extensions.widgets.storage import StorageOverview

__all__ = [
    "DaskLauncher",
    "DataStaging",
    "GPUMonitor",
    "OnboardingChecklist",
    "OwnEnvironments",
    "ProjectBudget",
    "SessionPanel",
    "StorageOverview",
    "mark_done",
]
