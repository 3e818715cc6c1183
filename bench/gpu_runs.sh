# Sourced by the bench/*_gpu.sh scripts (a lent GPU machine; $A = the `edgeclf train` arguments, $OUT = what comes
# back): a head-only warm-up fills the feature cache, then the whole network is fine-tuned on CUDA in several runs
# side by side, and each run directory comes back as $OUT/NAME.tgz (the training log inside, no tensorboard).
#   fine_tune_side_by_side EPOCHS TIMEOUT_S "NAME LR SEED" ...
fine_tune_side_by_side() {
  local epochs=$1 limit=$2 start names=()
  shift 2
  start=$(date +%s)
  python3 -m edgeclf $A --out /tmp/r/head > $OUT/head.log 2>&1; tail -4 $OUT/head.log
  echo "warm-up $(( $(date +%s) - start )) s"
  for cfg in "$@"; do
    set -- $cfg
    names+=("$1")
    OMP_NUM_THREADS=2 timeout $limit python3 -m edgeclf $A --out /tmp/r/$1 --fine-tune all --fine-tune-epochs $epochs \
      --fine-tune-lr $2 --seed $3 --device cuda --workers 5 > /tmp/$1.log 2>&1 &
  done
  wait
  echo "all $(( $(date +%s) - start )) s"
  for r in "${names[@]}"; do
    echo "== $r"; tr '\r' '\n' < /tmp/$r.log | grep -v "img/s\|it/s" | tail -8
    tr '\r' '\n' < /tmp/$r.log | grep -v "it/s" | tail -200 > /tmp/r/$r/train.log 2>/dev/null
    tar czf $OUT/$r.tgz --exclude tensorboard -C /tmp/r $r
  done
}
