# syntax=docker/dockerfile:1.7
#
# One image for the whole pipeline: the four stage services, the `tascomi` operator command and
# the simulated Tascomi API. A container runs one of them, named by its command (ECS task
# definitions in infra/modules/tascomi-pipeline/ecs.tf, docker-compose.yml).
#
#   docker build -t tascomi .                     # the dictionary is mounted at run time
#   docker build -t tascomi --target baked \
#     --build-context dictionary=../shared/tascomi .   # the dictionary baked in
#
# The column-type dictionary is not in this repository (the production one lives in the
# council's configuration repository). recast-svc reads it from TASCOMI_COLUMN_TYPE_DICTIONARY,
# /etc/tascomi/column-type-dictionary.json in the deployments: either mount the file there, or
# build the `baked` target with a build context named `dictionary` holding
# column-type-dictionary.json.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- Build ---------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
COPY . .
# The target directory is a cache mount (kept between builds), so the binaries are copied out
# of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --workspace \
    && mkdir -p /out \
    && for bin in ingest-svc parse-svc recast-svc snapshot-svc tascomi tascomi-sim; do \
         cp "target/release/$bin" /out/; \
       done

# --- Runtime -------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime-base
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 tascomi \
    && useradd --system --uid 10001 --gid tascomi --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin tascomi
COPY --from=builder /out/ingest-svc /out/parse-svc /out/recast-svc /out/snapshot-svc /usr/local/bin/
COPY --from=builder /out/tascomi /out/tascomi-sim /usr/local/bin/
# Readable by the non-root user whatever the file modes of the build context.
COPY --chmod=0444 pipeline.yaml /etc/tascomi/pipeline.yaml
ENV TASCOMI_PIPELINE_FILE=/etc/tascomi/pipeline.yaml
USER 10001:10001
CMD ["tascomi", "--help"]

# The image with the column-type dictionary inside (see the top of this file).
FROM runtime-base AS baked
COPY --chmod=0444 --from=dictionary column-type-dictionary.json /etc/tascomi/column-type-dictionary.json
ENV TASCOMI_COLUMN_TYPE_DICTIONARY=/etc/tascomi/column-type-dictionary.json

# The default target: the dictionary is mounted at /etc/tascomi/column-type-dictionary.json.
FROM runtime-base AS runtime
