"""Request and response bodies of the serving API (they are also its OpenAPI documentation)."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictInt, StrictStr


class ImagePayload(BaseModel):
    data: str = Field(description="The image file's bytes (PNG, JPEG, TIFF, BMP or .npy uint8), base64-encoded.")
    filename: str | None = Field(None, description="Echoed back; the content decides the format, not this name.")


class PredictJSON(BaseModel):
    images: list[ImagePayload] = Field(min_length=1)


class Prediction(BaseModel):
    index: int
    filename: str | None
    predicted_class: str = Field(description="The served decision: the stored operating point's, else argmax.")
    confidence: float = Field(description="The probability of the predicted class.")
    probabilities: dict[str, float]
    positive_probability: float | None = Field(
        None, description="Probability of the operating point's positive class (None: argmax decision)."
    )
    threshold: float | None = Field(
        None, description="Decision threshold on positive_probability, chosen on validation (None: argmax)."
    )


class ModelRef(BaseModel):
    name: str
    version: str


class PredictResponse(BaseModel):
    request_id: str
    model: ModelRef
    predictions: list[Prediction]


class ErrorBody(BaseModel):
    error: str = Field(description="A stable error code, e.g. too_many_pixels, wrong_channels, unsupported_type.")
    detail: str = Field(description="What was wrong and what to do.")
    file: str | None = Field(None, description="The offending file, when one is to blame.")


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    ready: bool
    model_version: str | None = None
    detail: str | None = None


class ModelInfo(BaseModel):
    name: str
    version: str
    uri: str
    data_version: str | None
    class_names: list[str]
    image_size: int
    channels: int
    provider: str
    quantized: str
    loaded_at: str
    metrics: dict[str, float]
    gates: dict[str, str]
    tags: dict[str, str]
    last_reload_error: str | None = None
    batches: int = 0
    mean_batch_size: float = 0.0
    challenger_version: str | None = Field(None, description="serving.canary: the challenger loaded beside it.")
    challenger_error: str | None = None


class ReloadResponse(BaseModel):
    reloaded: bool
    previous_version: str | None
    version: str | None


class FeedbackRequest(BaseModel):
    request_id: str = Field(min_length=1, max_length=128)
    label: StrictStr | StrictInt = Field(description="The true class: a class name or its index (not a bool).")
    index: StrictInt | None = Field(
        None, ge=0, lt=2**31, description="Only this image of the request (default: all its images)."
    )


class FeedbackResponse(BaseModel):
    updated: int


class ExplainResponse(BaseModel):
    request_id: str
    model: ModelRef
    filename: str | None
    predicted_class: str
    target_class: str = Field(description="The class the heatmap explains.")
    probabilities: dict[str, float] = Field(description="Of the PyTorch flavour of the served version.")
    heatmap: list[list[float]] = Field(description="Grad-CAM map at the image's model size, 0..1 (rows, columns).")
    overlay_png: str = Field(description="The heatmap over the image, a base64 PNG.")
