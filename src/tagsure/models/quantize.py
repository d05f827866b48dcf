"""int8 inference: a network's Linear and LSTM weights quantised, activations quantised per batch.

Dynamic quantisation (``torch.ao.quantization.quantize_dynamic``, qint8 weights) runs on the
CPU only and changes no file: a model file stays fp32, is verified in fp32, and is quantised in
memory afterwards (see ``Tagger.load(path, precision="int8")``).

``torch.ao.quantization`` is deprecated in PyTorch 2.13 in favour of torchao (``quantize_`` with
``Int8DynamicActivationInt8WeightConfig``), which quantises ``nn.Linear`` only, not ``nn.LSTM``:
the BiLSTM taggers' main cost. So the eager API is used while it exists; its deprecation
warnings go to the log.

Example:
    >>> from torch import nn
    >>> quantize_int8(nn.Sequential(nn.Linear(4, 2)))[0]._get_name()
    'DynamicQuantizedLinear'
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

logger = logging.getLogger(__name__)

QUANTIZED_TYPES = {nn.Linear, nn.LSTM}


def quantize_int8(model: nn.Module) -> nn.Module:
    """``model`` with its Linear and LSTM layers dynamically quantised to int8, in place."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        quantized = quantize_dynamic(model, QUANTIZED_TYPES, dtype=torch.qint8, inplace=True)
    for warning in {str(w.message).splitlines()[0] for w in said}:
        logger.info("quantize_dynamic: %s", warning)
    return quantized
