# Stand-in for MinIO and mc: moto's S3 server (PyPI) and boto3 on the local Python base.
# moto serves multipart uploads and presigned GETs, but never checks a signature or applies lifecycle
# rules, so the compose test checks links by what they name and serve, not by a rejected tampered link.
ARG PYTHON_BASE=export-engine-local/python:3.11-bookworm
FROM ${PYTHON_BASE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python3 -m venv /opt/venv && pip install "moto[server]==5.2.5" "boto3==1.44.8"
USER 65534:65534
EXPOSE 9000
CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
