# shellcheck shell=bash
# NCCL settings for multi-node training; meant to be sourced (scripts/slurm.sbatch does):
#   . scripts/nccl_env.sh
# Every line keeps a value already in the environment, so `NCCL_DEBUG=INFO sbatch ...` wins.
# Only NCCL_DEBUG gets a default; the others depend on the site's network and are examples to
# uncomment. Names and values: NVIDIA's NCCL "Environment Variables" page. NCCL has no collective
# timeout variable (PyTorch's TORCH_NCCL_* variables do not apply here).
# Safe with `set -u`; scripts/launch.sh forwards every NCCL_* variable to the ranks, srun passes the
# whole environment.

# --- Logging ---------------------------------------------------------------------------------
# Verbosity: VERSION, WARN (errors and warnings only), INFO (transports, rings, NICs picked), TRACE.
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}
# Which INFO subsystems to print (INIT, NET, GRAPH, ENV, COLL, P2P, SHM, TUNING, ALL).
# export NCCL_DEBUG_SUBSYS=${NCCL_DEBUG_SUBSYS:-INIT,NET}
# One log file per process instead of stdout (%h: host name, %p: PID).
# export NCCL_DEBUG_FILE=${NCCL_DEBUG_FILE:-nccl.%h.%p.log}

# --- Network between nodes (system configuration) ---------------------------------------------
# IP interfaces for bootstrap and the TCP socket transport: a prefix list, =exact, ^excluded.
# export NCCL_SOCKET_IFNAME=${NCCL_SOCKET_IFNAME:-=eth0}        # or ib0, bond0, ^docker,lo
# InfiniBand / RoCE HCAs to use, by device name (and :port); see `ibv_devinfo` / `ibdev2netdev`.
# export NCCL_IB_HCA=${NCCL_IB_HCA:-mlx5_0,mlx5_1,mlx5_2,mlx5_3}  # or =mlx5_0:1, ^mlx5_4
# RoCE only: the GID index to use (recent NCCL picks the RoCEv2 one itself; 3 is common).
# export NCCL_IB_GID_INDEX=${NCCL_IB_GID_INDEX:-3}
# Rings/trees between nodes: 0 keeps each on one NIC, 1 lets it change NIC (unset: NCCL picks).
# export NCCL_CROSS_NIC=${NCCL_CROSS_NIC:-0}

# --- AWS EFA (aws-ofi-nccl plugin; these are libfabric variables, not NCCL's) -------------------
# export FI_PROVIDER=${FI_PROVIDER:-efa}
# export FI_EFA_USE_DEVICE_RDMA=${FI_EFA_USE_DEVICE_RDMA:-1}

# --- Workarounds: set to diagnose or get past a problem, not as permanent settings --------------
# GPUDirect RDMA: the farthest NIC-GPU path to use it on (LOC: never; PIX, PXB, PHB, SYS).
# export NCCL_NET_GDR_LEVEL=${NCCL_NET_GDR_LEVEL:-PHB}
# In-node GPU-to-GPU P2P: the farthest path to use it on (LOC, NVL, PIX, PXB, PHB, SYS).
# export NCCL_P2P_LEVEL=${NCCL_P2P_LEVEL:-NVL}
# 1: no in-node P2P at all (traffic goes through host memory); suspect broken P2P / ACS.
# export NCCL_P2P_DISABLE=${NCCL_P2P_DISABLE:-1}
# 0: no NVLink SHARP (NVLS, NVSwitch systems such as HGX H100); e.g. if Fabric Manager errors.
# export NCCL_NVLS_ENABLE=${NCCL_NVLS_ENABLE:-0}
# InfiniBand queue pairs per connection (more can help with adaptive routing / ECMP on RoCE).
# export NCCL_IB_QPS_PER_CONNECTION=${NCCL_IB_QPS_PER_CONNECTION:-4}
