# syntax=docker/dockerfile:1
#
# voiceguard edge image: SIP B2BUA + RTP relay + ONNX detector + admin API/console.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t voiceguard:0.1.0 .
#
# Both platforms work from the same file: onnxruntime-node ships its CPU binaries for
# linux/x64 and linux/arm64 inside the npm package (bin/napi-v6/linux/{x64,arm64}), the ONNX
# model is platform independent, and better-sqlite3 either downloads its prebuilt binary for
# the platform or, offline, compiles from source with the toolchain of the build stage.
# test/deploy/dockerfile.test.ts replays this file without a Docker engine.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------
# build: compilers, all dependencies, TypeScript build, native addons, then prune dev deps.
# ---------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
# The toolchain lives only in this stage: better-sqlite3 (and native/, when it has a
# binding.gyp) compile with it when no prebuilt binary fits the platform. libbcg729-dev is for
# the G.729 decoder (native/g729), which links bcg729 statically: the runtime stage needs no library.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ ca-certificates libbcg729-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so source edits do not invalidate the npm ci layer.
# .npmrc carries onnxruntime-node-install=skip: the CPU binaries in the package are enough.
COPY package.json package-lock.json .npmrc ./
# npm ci's postinstall builds the G.729 decoder from here.
COPY native/g729 ./native/g729
# The official node images carry the Node headers in /usr/local/include/node; pointing
# node-gyp at them avoids downloading headers when a native module compiles from source.
RUN if [ -d /usr/local/include/node ]; then export npm_config_nodedir=/usr/local; fi; npm ci --no-audit --no-fund
COPY . .
RUN npm run build
# native/ holds the optional native media relay. The TypeScript relay is used unless a
# binding.gyp is there; this step builds it only then, and says which one the image has.
RUN mkdir -p native && if [ -f native/binding.gyp ]; then if [ -d /usr/local/include/node ]; then export npm_config_nodedir=/usr/local; fi; cd native && node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" rebuild --release && rm -rf build/Release/obj.target build/Release/.deps; else echo "native/: no binding.gyp, the image uses the TypeScript media relay"; fi
RUN npm prune --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------------
# runtime: node + production node_modules + dist + model + console. No compilers, no npm
# install at run time, runs as an unprivileged user.
# ---------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    VOICEGUARD_CONFIG=/etc/voiceguard/voiceguard.yaml \
    VOICEGUARD_STORE_PATH=/var/lib/voiceguard/voiceguard.sqlite \
    VOICEGUARD_API_HOST=0.0.0.0
# A fixed uid/gid so volume permissions are predictable (chown 10001 on the host side).
RUN groupadd --system --gid 10001 voiceguard && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/voiceguard --no-create-home --shell /usr/sbin/nologin voiceguard && mkdir -p /etc/voiceguard /var/lib/voiceguard && chown 10001:10001 /var/lib/voiceguard
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/native ./native
COPY --from=build /src/models/voiceguard-detector.onnx /src/models/voiceguard-detector.json ./models/
COPY --from=build /src/src/api/console ./src/api/console
COPY --from=build /src/deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# A working default config; a named volume on /etc/voiceguard starts with this file in it.
COPY --from=build /src/deploy/voiceguard.example.yaml /etc/voiceguard/voiceguard.yaml
VOLUME ["/etc/voiceguard", "/var/lib/voiceguard"]
# SIP, the admin API/console, and the RTP range. The RTP range here is the default of
# media.portMin..media.portMax; if you change it in the config, publish that range instead
# (or use network_mode: host, see docker-compose.example.yml).
EXPOSE 5060/udp 5060/tcp 5061/tcp 8080/tcp 20000-29999/udp
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
