# netrunbook: the Slack bot in a small image.
#
#   docker build -t netrunbook .
#   docker run -d --name netrunbook -e SLACK_APP_TOKEN -e SLACK_BOT_TOKEN \
#     -v netrunbook-data:/data -p 9090:9090 netrunbook
#
# The conversation store (sled) lives on the volume /data, owned by uid 10001; with NETRUNBOOK_DATABASE_URL
# (two or more replicas on PostgreSQL: see the README) every piece of state is in the database and /data is
# not used. The knowledge base is baked in
# at /etc/netrunbook/intents; mount your own directory there (read-only is fine) to replace it without a
# rebuild: `-v "$PWD/intents:/etc/netrunbook/intents:ro"`.

# ---- build ------------------------------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# The release profile keeps line tables (debug = 1) for local profiling; the image doesn't need them, and
# without them the binary is much smaller and quicker to link.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_TERM_COLOR=never

# Dependency layer: rebuilt only when Cargo.toml, Cargo.lock or build.rs change. Cargo needs every target the
# manifest names to exist, so stand-ins are made for the binary, the library and the [[bench]]; build.rs
# embeds intents/*.yaml, of which there are none yet. The tests' dev crate (a workspace member and
# dev-dependency) is never built here, but cargo reads its manifest to resolve the workspace. (Docker caches
# layers by default; buildah needs --layers.)
COPY Cargo.toml Cargo.lock build.rs ./
COPY tests/testkit/Cargo.toml ./tests/testkit/
RUN mkdir -p src benches intents tests/testkit/src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && : > tests/testkit/src/lib.rs \
    && echo 'fn main() {}' > benches/matcher.rs \
    && cargo build --release --locked \
    && rm -rf src intents

# The real sources. The benchmark stand-in stays: it is never built here. Forget the stand-in build of our own
# crate (COPY keeps the files' old mtimes, which cargo would take for "unchanged"), so build.rs runs again
# and embeds the real intents. `check` proves it: the stand-in binary would print nothing, and an empty
# built-in knowledge base is invalid.
COPY src ./src
COPY intents ./intents
# the labelled sets the learned layer is fit on are compiled in (src/learned.rs)
COPY tests/data/*.jsonl ./tests/data/
RUN rm -rf target/release/.fingerprint/netrunbook-* target/release/build/netrunbook-* \
    && cargo build --release --locked \
    && cp target/release/netrunbook /usr/local/bin/netrunbook \
    && /usr/local/bin/netrunbook --version \
    && /usr/local/bin/netrunbook check \
    && /usr/local/bin/netrunbook check --intents intents

# ---- run --------------------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the bot talks HTTPS and WSS to Slack. A fixed uid/gid so volume ownership and a
# Kubernetes runAsNonRoot/runAsUser check are predictable.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
    && groupadd --gid 10001 netrunbook \
    && useradd --uid 10001 --gid 10001 --no-log-init --home-dir /nonexistent --no-create-home \
         --shell /usr/sbin/nologin netrunbook \
    && install -d -o 10001 -g 10001 -m 0750 /data

COPY --from=build /usr/local/bin/netrunbook /usr/local/bin/netrunbook
COPY intents/ /etc/netrunbook/intents/

# serve listens on 127.0.0.1:9090 by default; in a container it must take the published port on every
# interface. `netrunbook health` reads the same variable and asks 127.0.0.1.
ENV NETRUNBOOK_INTENTS=/etc/netrunbook/intents \
    NETRUNBOOK_DB=/data \
    NETRUNBOOK_HTTP_ADDR=0.0.0.0:9090
VOLUME ["/data"]
WORKDIR /data
USER 10001:10001
# /healthz, /readyz and /metrics.
EXPOSE 9090
# Ignored by Kubernetes (use probes on :9090/healthz there) and by OCI-format builds (buildah's default:
# build with --format docker to keep it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/netrunbook", "health"]
ENTRYPOINT ["/usr/local/bin/netrunbook"]
CMD ["serve"]
