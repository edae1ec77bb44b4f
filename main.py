"""Cloud Functions entry points: one source folder, one function per entry point.

functions-framework --source main.py --target predict --port 8080
functions-framework --source main.py --target chat --port 8082
"""

from functions.chat import chat
from functions.predict import predict

__all__ = ["chat", "predict"]
