#!/bin/bash
#SBATCH --job-name=jupyterhub-ola
#SBATCH --partition=accel
#SBATCH --time=1-00:00:00
#SBATCH --cpus-per-task=32
#SBATCH --mem=32G
#SBATCH --gres=gpu:a100:4
#SBATCH --account=nn1234k
#SBATCH --reservation=naic-workshop-1
#SBATCH --chdir=/home/ola
#SBATCH --output=/home/ola/.naic/jupyterhub-%j.log
#SBATCH --export=ALL

fail() { echo "naic-hub: $*" >&2; exit 1; }
type module >/dev/null 2>&1 || source /etc/profile
module purge
module load PyTorch/2.1.2-foss-2023a-CUDA-12.1.1 || fail 'cannot load the module PyTorch/2.1.2-foss-2023a-CUDA-12.1.1'
set -euo pipefail
echo "naic-hub: session starting on $(hostname) at $(date -Is)"
exec /opt/naic/envs/base/bin/jupyterhub-singleuser
