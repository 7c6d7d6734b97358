"""The exact side: architecture specs, their DAGs, path sums, symmetry and hypotheses."""

from graphs.dag import ensure_dag, in_degrees, input_nodes, node_layers, output_nodes, to_dag
from graphs.errors import CyclicGraphError, InputError, SpecError
from graphs.layers import apply_linear, structural_forward, structural_weight, weight_shape
from graphs.operator import in_degree_maps, multiplier_maps, operator_vjp, path_sum_factor, path_sums_operator
from graphs.spec import (
    FAMILIES,
    IMAGE_FAMILIES,
    PADDINGS,
    AvgPool2d,
    Conv2d,
    Linear,
    MaskedLinear,
    Spec,
    avgpool_cnn_spec,
    build_spec,
    dense_spec,
    parse_dims,
    random_dag_spec,
    strided_cnn_spec,
)

__all__ = [
    "FAMILIES",
    "IMAGE_FAMILIES",
    "PADDINGS",
    "AvgPool2d",
    "Conv2d",
    "CyclicGraphError",
    "InputError",
    "Linear",
    "MaskedLinear",
    "Spec",
    "SpecError",
    "apply_linear",
    "avgpool_cnn_spec",
    "build_spec",
    "dense_spec",
    "ensure_dag",
    "in_degree_maps",
    "in_degrees",
    "input_nodes",
    "multiplier_maps",
    "node_layers",
    "operator_vjp",
    "output_nodes",
    "parse_dims",
    "path_sum_factor",
    "path_sums_operator",
    "random_dag_spec",
    "strided_cnn_spec",
    "structural_forward",
    "structural_weight",
    "to_dag",
    "weight_shape",
]
