# Stand-in for python:3.11-slim-bookworm on a machine that cannot pull images: Debian 12's own
# Python 3.11 (with venv, which the project Dockerfile's build stage uses) on the debootstrapped base.
# ca-certificates/ holds the build machine's extra certificate authorities (compose_test.py copies
# /usr/local/share/ca-certificates there; empty elsewhere): where HTTPS goes through an intercepting
# proxy, pip inside the build needs them. PIP_CERT makes pip use the system store instead of its own.
ARG DEBIAN_BASE=export-engine-local/debian:bookworm
FROM ${DEBIAN_BASE}
COPY ca-certificates/ /usr/local/share/ca-certificates/
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
