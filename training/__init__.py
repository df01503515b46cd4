"""Training pipeline (TensorFlow/Keras): corpora, datasets, training, evaluation and export to model_repository/."""
