# Switchyard container image. Node 24 runs the TypeScript sources directly (type stripping):
# no compile step, the image is the sources plus production dependencies.
#
#   docker build -t switchyard:0.1.0 .
#   docker run --rm --stop-timeout 35 -p 8080:8080 -p 127.0.0.1:9090:9090
#     -e SWITCHYARD_ADMIN_KEY=... -e SWITCHYARD_ENDPOINT_KEY=... -e SWITCHYARD_MODEL_URL=http://model:5001
#     switchyard:0.1.0          (one command)
# Your own config: mount a directory holding gateway.yaml over /etc/switchyard
# (-v "$PWD/conf:/etc/switchyard:ro"); a single-file mount would not follow editors' saves.
# --stop-timeout: Docker's default 10 s is shorter than the drain (server.shutdown_grace_ms).
#
# test/integration/packaging.test.ts reads this file (with a Dockerfile parser) and installs
# and starts what it copies, the way the final stage runs it.

# --- deps: production dependencies only, resolved exactly from the lockfile. ---------------
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev leaves out the `node` devDependency too (it pins Node 24 for npm scripts on
# machines with an older node; the image's own node is 24 already).
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- final: Node 24, tini, the sources. -----------------------------------------------------
FROM node:24-slim
# tini as PID 1: it forwards SIGTERM to the gateway (which then drains: stop accepting, finish
# requests in flight for up to server.shutdown_grace_ms, exit 0) and reaps zombies. No need
# for `docker run --init`.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin/ ./bin/
COPY gateway/ ./gateway/
COPY policies/ ./policies/
COPY config/ ./config/

# The config: a working example that reads its secrets and the model's URL from the
# environment. Mount your own file over it (or a directory over /etc/switchyard: a
# Kubernetes ConfigMap; its updates reload the gateway). SWITCHYARD_CONFIG is what
# `switchyard serve` reads when no --config is given.
COPY deploy/docker/gateway.yaml /etc/switchyard/gateway.yaml
ENV SWITCHYARD_CONFIG=/etc/switchyard/gateway.yaml

# The one writable place: the state file (state.file: regenerated keys without Redis) and the
# request-body spool (server.request_spool_dir). The config's own directory is usually a
# read-only mount, and Kubernetes runs the root filesystem read-only.
RUN mkdir -p /var/lib/switchyard && chown 1000:1000 /var/lib/switchyard

# The image's `node` user, by number: Kubernetes can check runAsNonRoot only against a
# numeric USER.
USER 1000:1000

# public (server.listen), private (server.private_listen), admin (server.admin_listen:
# /healthz /readyz /metrics /admin). Publish the admin port only where operators reach it.
EXPOSE 8080 8081 9090

# No curl in slim images: Node's fetch. Exit 0 only on a 2xx from /healthz. Override the URL
# when a mounted config moves admin_listen.
ENV SWITCHYARD_HEALTHCHECK_URL=http://127.0.0.1:9090/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.SWITCHYARD_HEALTHCHECK_URL,{signal:AbortSignal.timeout(3000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/tini", "--", "node", "bin/switchyard.mjs"]
CMD ["serve"]
