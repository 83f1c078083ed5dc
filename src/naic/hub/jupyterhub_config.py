# naic-hub's JupyterHub configuration. Everything comes from the service catalogue
# (NAIC_CATALOGUE) and the other NAIC_* variables; see naic.hub.app.config. Works with
# `naic up` and with plain `jupyterhub -f src/naic/hub/jupyterhub_config.py`.
from naic.hub.app.config import load_into

load_into(c)  # noqa: F821 - JupyterHub provides `c`
