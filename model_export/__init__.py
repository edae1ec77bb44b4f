"""Model export: the bundle contract, the artifact store and the ONNX exporter.

`bundle` and `store` are light (pydantic only) because serving imports them; the
exporter (`model_export.export`) pulls in scikit-learn and onnx and is training-only.
"""
