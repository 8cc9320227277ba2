"""Model training: point-in-time training sets, LightGBM and baselines, MLflow."""
