"""The file MLflow runs to load the pyfunc model ("models from code": no pickled Python object)."""

import mlflow

from pipeline.tracking.pyfunc import SegmentationModel

mlflow.models.set_model(SegmentationModel())
