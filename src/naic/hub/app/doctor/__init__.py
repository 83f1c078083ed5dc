"""`naic doctor`: what is wrong with a deployment, before any user finds it.

Each problem is one sentence with its fix; each check one line (ok / problem). The pure
sentences are in `findings` (this machine, the identity provider, clocks) and
`site_findings` (Slurm sites, SSH); `here` and `at_sites` measure; `runner` runs and prints,
and gives `naic up` its quick checks at start (`up_checks`); `options` is the command line.
"""
