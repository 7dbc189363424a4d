# The image examples/kubernetes/surql-indexed-job.yaml runs: the release
# `surql` binary, the shipped Slack and PagerDuty plugins, a non-root user,
# and a project's environments.json and migrations copied in (or mounted
# over /work at run time). Passwords stay `${VAR}`s in environments.json,
# set from Secrets when the pod starts; none is written into the image.
#
#   docker build -t registry.example.com/acme/surql-migrations:2026-12-01 \
#     --build-arg CONFIG=environments.json --build-arg MIGRATIONS=examples/migrations .
#   docker run --rm registry.example.com/acme/surql-migrations:2026-12-01 orchestrate status -e all
#
# Plugins are at /usr/local/lib/surql/plugins/ (environments.json names
# them by path, e.g. "/usr/local/lib/surql/plugins/libsurql_slack.so").

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p surql-cli -p surql-slack -p surql-pagerduty \
 && mkdir -p /out/plugins \
 && cp target/release/surql /out/ \
 && cp target/release/libsurql_slack.so target/release/libsurql_pagerduty.so /out/plugins/

FROM debian:${DEBIAN_RELEASE}-slim
# ca-certificates: wss:// servers and the plugins' HTTPS calls.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /work --shell /usr/sbin/nologin surql \
 && mkdir -p /work \
 && chown surql:surql /work
COPY --from=build /out/surql /usr/local/bin/surql
COPY --from=build /out/plugins/ /usr/local/lib/surql/plugins/

# The project: owned by root, read-only to the runner. The embedded state
# store (the default, `.surql/` in /work) is writable; a fleet uses a state
# server (SURQL_STATE) so that every runner shares one record.
ARG CONFIG=environments.json
ARG MIGRATIONS=examples/migrations
WORKDIR /work
COPY ${CONFIG} /work/environments.json
COPY ${MIGRATIONS}/ /work/migrations/

USER surql
ENTRYPOINT ["surql"]
CMD ["--help"]
