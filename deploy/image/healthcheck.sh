#!/bin/sh
# The image's HEALTHCHECK (Dockerfile): asks the pipeline service this container runs for
# `<service> --health`, which loads its settings from the environment and exits 0, or exits
# non-zero with the reason. The service is found among the container's processes (it is PID 1,
# or the child of an init process: ECS's initProcessEnabled, `docker run --init`). A container
# running something else (tascomi, a shell) has nothing to check.
#
# ECS does not need this: the task definitions name the service (`healthCheck` in
# infra/modules/tascomi-pipeline/ecs.tf). HEALTHCHECK_PROC_DIR replaces /proc in tests.
proc_dir="${HEALTHCHECK_PROC_DIR:-/proc}"
for comm in "$proc_dir"/[0-9]*/comm; do
  [ -r "$comm" ] || continue
  IFS= read -r name <"$comm" || continue
  case "$name" in
    ingest-svc | parse-svc | recast-svc | snapshot-svc)
      exec "$name" --health
      ;;
  esac
done
exit 0
