"""Where the session's numbers come from, one module a domain:

    naic.extensions.sources.jobend     when Slurm ends the job (`squeue`)
    naic.extensions.sources.gpu        the session's GPUs (NVML) and the sampler that reads them
    naic.extensions.sources.storage    usage against quota per storage area (`df`, `du`, `lfs`)
    naic.extensions.sources.hubclient  the hub's REST API: budgets, stop, extend, activity
    naic.extensions.sources.commands   running a command with a time limit (shared by the above)

Each source is a small interface (a Protocol), one real implementation, and the fake the
tests and demos use. Widgets and the server extension take a source in their constructor
and never reach for NVML, `du` or the hub themselves, so what they show is testable.
A source that cannot answer says so in words ("not available here", "budgets not
available yet") instead of raising into a notebook.

Import what you need from its module; this package's own namespace is empty. Standard
library only at import: `pynvml` is imported at the first GPU sample. The session's facts,
and the source that reads them, are in `naic.extensions.session`.
"""
