"""Cloud Functions entry points: one source folder, one function per entry point.

functions-framework --source main.py --target predict --port 8080
functions-framework --source main.py --target explain --port 8081
functions-framework --source main.py --target chat --port 8082
functions-framework --source main.py --target retrain --port 8083   (CloudEvent)
"""

from estate.serving.bodies import install_body_guard
from estate.serving.chat.entry import chat
from estate.serving.explain import explain
from estate.serving.predict import predict
from estate.serving.retrain import retrain

install_body_guard()  # bound every request body's size and read time (estate/serving/bodies.py)

__all__ = ["chat", "explain", "predict", "retrain"]
