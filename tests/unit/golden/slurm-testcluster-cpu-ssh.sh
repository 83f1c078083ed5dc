#!/bin/bash
#SBATCH --job-name=jupyterhub-alice
#SBATCH --partition=normal
#SBATCH --time=0:30:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=16G
#SBATCH --account=demo
#SBATCH --chdir=/home/alice
#SBATCH --output=/home/alice/.naic/jupyterhub-%j.log
#SBATCH --export=NONE

export JUPYTERHUB_API_TOKEN=0123abcd
export JUPYTERHUB_API_URL=http://10.0.0.1:8081/hub/api
export NAIC_SESSION='{"site":"remote","note":"it'"'"'s $(id)"}'
export SLURM_EXPORT_ENV=ALL
fail() { echo "naic-hub: $*" >&2; exit 1; }
[ -f /opt/naic/envs/base/bin/activate ] || fail 'the environment /opt/naic/envs/base is missing on this node; tell the hub operators'
source /opt/naic/envs/base/bin/activate
set -euo pipefail
echo "naic-hub: session starting on $(hostname) at $(date -Is)"
exec /opt/naic/envs/base/bin/jupyterhub-singleuser --debug
