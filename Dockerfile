# Build: docker build -t crowsnest .   Run: docker run -p 8080:8080 -e CROWSNEST_JWT_SECRET=... crowsnest
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
# Not built here, but the manifest declares them and cargo refuses a manifest whose targets are missing.
COPY benches benches
COPY tests tests
RUN cargo build --release --locked && strip target/release/crowsnest

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /var/lib/crowsnest --create-home crowsnest
COPY --from=build /src/target/release/crowsnest /usr/local/bin/crowsnest
USER crowsnest
WORKDIR /var/lib/crowsnest
ENV CROWSNEST_BIND=0.0.0.0:8080 DATABASE_URL=/var/lib/crowsnest/crowsnest.db
EXPOSE 8080
ENTRYPOINT ["crowsnest"]
CMD ["serve"]
