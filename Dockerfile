# Multi-stage build of both binaries into a slim runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
# libopus is built from source by the opus crate.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cargo build --release --bins --locked \
 && cp target/release/voxbridge target/release/voxbridge-media /usr/local/bin/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates espeak-ng \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/voxbridge --create-home voxbridge
COPY --from=build /usr/local/bin/voxbridge /usr/local/bin/voxbridge-media /usr/local/bin/
USER voxbridge
WORKDIR /var/lib/voxbridge
ENV VOXBRIDGE_HTTP_ADDR=0.0.0.0:8080 \
    VOXBRIDGE_DATA_DIR=/var/lib/voxbridge \
    VOXBRIDGE_LOG_FORMAT=json
VOLUME ["/var/lib/voxbridge"]
EXPOSE 8080/tcp 5060/udp 5060/tcp 5061/tcp 10000-20000/udp
ENTRYPOINT ["voxbridge"]
