# syntax=docker/dockerfile:1.7
#
# The pipeline's image: the four stage services and the `tascomi` operator command. A container
# runs one of them, named by its command (ECS task definitions in
# infra/modules/tascomi-pipeline/ecs.tf, docker-compose.yml). Targets:
#
#   runtime (default)  the services and tascomi; no column-type dictionary (named at run time)
#   baked              optional: runtime with a dictionary inside, for a host with neither S3 nor
#                      a volume to mount; never needed by the deployments
#   sim                the simulated Tascomi API alone, for docker-compose; never deployed
#
#   docker buildx build -t tascomi .
#   docker buildx build -t tascomi --target baked --build-context dictionary=<folder holding column-type-dictionary.json> .
#   docker buildx build -t tascomi-sim --target sim .
#
# The column-type dictionary is the council's configuration, not part of this repository or of
# the default image: the services read it once at start-up from TASCOMI_COLUMN_TYPE_DICTIONARY,
# a path or an s3://bucket/key URI. On AWS, Terraform uploads the council's file to S3 and sets
# that URI (infra/modules/tascomi-pipeline/dictionary.tf), so a new dictionary needs no new
# image; docker-compose mounts a file at /etc/tascomi/column-type-dictionary.json.
#
# Architectures: every build is native. Build linux/amd64 on an x86_64 machine and linux/arm64
# (Graviton tasks) on an arm64 one (a Graviton instance, an Apple silicon Mac, GitHub's
# ubuntu-24.04-arm runner; .github/workflows/release.yml builds each on its own runner and
# joins them in one manifest). Under QEMU emulation a cold release build of the AWS SDKs and
# Arrow takes hours, so the build stops at once when the build platform is not the target
# platform, unless --build-arg ALLOW_EMULATION=true.
#
# Dependencies are compiled in a layer of their own (cargo-chef): it is rebuilt only when
# Cargo.lock or a Cargo.toml changes, so a code change recompiles the workspace's crates only.
# Only the shipped packages and their dependencies are built, never the tests, the simulator
# or the benchmark (the `sim` target builds the simulator on top).

# The base images are pinned by these tags (checkov cannot read a tag through an ARG):
#checkov:skip=CKV_DOCKER_7:the FROM images are ARGs whose defaults carry exact version tags
ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG CARGO_CHEF_VERSION=0.1.78

# --- Build ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS chef
ARG CARGO_CHEF_VERSION
ARG BUILDPLATFORM
ARG TARGETPLATFORM
ARG TARGETARCH
ARG ALLOW_EMULATION=false
RUN if [ -n "$BUILDPLATFORM" ] && [ "$BUILDPLATFORM" != "$TARGETPLATFORM" ] \
       && [ "$ALLOW_EMULATION" != "true" ]; then \
      echo "Building $TARGETPLATFORM on $BUILDPLATFORM would compile under emulation (hours)." >&2; \
      echo "Build on a $TARGETARCH machine or runner, or pass --build-arg ALLOW_EMULATION=true." >&2; \
      exit 1; \
    fi
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# The recipe: the workspace's manifests and lock file, without its sources.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
      -p ingest-svc -p parse-svc -p recast-svc -p snapshot-svc -p ctl
COPY . .
RUN cargo build --release --locked -p ingest-svc -p parse-svc -p recast-svc -p snapshot-svc -p ctl \
    && mkdir -p /out \
    && for bin in ingest-svc parse-svc recast-svc snapshot-svc tascomi; do \
         cp "target/release/$bin" /out/; \
       done

# The simulator, on top of the services' build (most of its dependencies are compiled there).
FROM builder AS sim-builder
RUN cargo build --release --locked -p tascomi-sim \
    && cp target/release/tascomi-sim /out/

# --- Runtime -------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS base
# The base image's tag moves with Debian's security updates; pinning the package version would
# only hold a vulnerable CA bundle back.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tascomi \
    && useradd --system --uid 10001 --gid tascomi --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin tascomi

# The simulated Tascomi API (docker-compose.yml): the only image holding it.
FROM base AS sim
COPY --from=sim-builder /out/tascomi-sim /usr/local/bin/
USER 10001:10001
CMD ["tascomi-sim", "--help"]

FROM base AS runtime-base
COPY --from=builder /out/ingest-svc /out/parse-svc /out/recast-svc /out/snapshot-svc /usr/local/bin/
COPY --from=builder /out/tascomi /usr/local/bin/
COPY --chmod=0555 deploy/image/healthcheck.sh /usr/local/bin/tascomi-healthcheck
# Readable by the non-root user whatever the file modes of the build context.
COPY --chmod=0444 pipeline.yaml /etc/tascomi/pipeline.yaml
ENV TASCOMI_PIPELINE_FILE=/etc/tascomi/pipeline.yaml
USER 10001:10001
# The service this container runs answers `<service> --health`: its settings load from the
# environment (exit 0) or it says why not. ECS runs the same probe from the task definition.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 CMD ["tascomi-healthcheck"]
CMD ["tascomi", "--help"]

# Optional: the image with a column-type dictionary inside (see the top of this file). Nothing
# builds it by default; TASCOMI_COLUMN_TYPE_DICTIONARY in a task's environment overrides it.
FROM runtime-base AS baked
# `dictionary` is a named build context (--build-context dictionary=DIR), not a stage.
# hadolint ignore=DL3022
COPY --chmod=0444 --from=dictionary column-type-dictionary.json /etc/tascomi/column-type-dictionary.json
ENV TASCOMI_COLUMN_TYPE_DICTIONARY=/etc/tascomi/column-type-dictionary.json

# The default target: no dictionary; TASCOMI_COLUMN_TYPE_DICTIONARY names it at run time.
FROM runtime-base AS runtime
