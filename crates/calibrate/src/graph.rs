//! The ONNX graph: reading it, deciding where Q/DQ goes, and writing the
//! Q/DQ model.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, TensorProto, attribute_proto::AttributeType,
};

use crate::CalibrateError;

/// The oldest opset with per-channel DequantizeLinear (`axis`), which
/// TensorRT needs for per-channel weights.
const MIN_OPSET: i64 = 13;

/// An ONNX model held as its protobuf.
#[derive(Clone, Debug)]
pub struct OnnxModel {
    proto: ModelProto,
}

impl OnnxModel {
    /// Reads `path`, refusing models that are not FP32 or too old for
    /// per-channel Q/DQ.
    pub fn load(path: &Path) -> Result<Self, CalibrateError> {
        let bytes = std::fs::read(path).map_err(|error| CalibrateError::ReadModel {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        let proto =
            ModelProto::decode(bytes.as_slice()).map_err(|error| CalibrateError::ReadModel {
                path: path.to_owned(),
                reason: format!("not an ONNX protobuf: {error}"),
            })?;
        let unsupported = |reason: String| CalibrateError::Unsupported {
            path: path.to_owned(),
            reason,
        };
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| unsupported("the file holds no graph".into()))?;
        let opset = proto
            .opset_import
            .iter()
            .find(|set| set.domain.is_empty() || set.domain == "ai.onnx")
            .map_or(0, |set| set.version);
        if opset < MIN_OPSET {
            return Err(unsupported(format!(
                "its opset is {opset}; per-channel Q/DQ needs {MIN_OPSET} or later"
            )));
        }
        let initializers: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        for input in graph
            .input
            .iter()
            .filter(|input| !initializers.contains(input.name.as_str()))
        {
            let elem_type = input.r#type.as_ref().and_then(|ty| match &ty.value {
                Some(tract_onnx::pb::type_proto::Value::TensorType(tensor)) => {
                    Some(tensor.elem_type)
                }
                _ => None,
            });
            if elem_type != Some(DataType::Float as i32) {
                return Err(unsupported(format!(
                    "input {:?} is not FP32 (element type {elem_type:?}); calibration starts from an FP32 model",
                    input.name
                )));
            }
        }
        if let Some(node) = graph.node.iter().find(|node| {
            matches!(
                node.op_type.as_str(),
                "QuantizeLinear" | "DequantizeLinear" | "QLinearConv"
            )
        }) {
            return Err(unsupported(format!(
                "it is already quantized (node {:?} is {})",
                node.name, node.op_type
            )));
        }
        let model = OnnxModel { proto };
        for conv in model.nodes().iter().filter(|node| node.op_type == "Conv") {
            let weight = conv.input.get(1).map(String::as_str).unwrap_or_default();
            let tensor = model.initializer(weight).ok_or_else(|| {
                unsupported(format!(
                    "Conv {:?} takes its weights {weight:?} from the graph, not from an initializer",
                    conv.name
                ))
            })?;
            float_values(tensor).map_err(|reason| {
                unsupported(format!("Conv {:?} weights {weight:?}: {reason}", conv.name))
            })?;
        }
        Ok(model)
    }

    fn nodes(&self) -> &[NodeProto] {
        self.proto.graph.as_ref().map_or(&[], |graph| &graph.node)
    }

    fn initializer(&self, name: &str) -> Option<&TensorProto> {
        self.proto
            .graph
            .as_ref()?
            .initializer
            .iter()
            .find(|tensor| tensor.name == name)
    }

    /// Refuses float-set entries that name no Conv of this model: a typo in
    /// the configuration would otherwise quietly quantize the layer it
    /// meant to protect.
    pub fn check_float_nodes(
        &self,
        path: &Path,
        float_nodes: &[String],
    ) -> Result<(), CalibrateError> {
        for name in float_nodes {
            if !self
                .nodes()
                .iter()
                .any(|node| node.op_type == "Conv" && node.name == *name)
            {
                return Err(CalibrateError::Unsupported {
                    path: path.to_owned(),
                    reason: format!(
                        "its float set names {name:?}, which is not a Conv node of the model"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Names of the graph's real inputs (not initializers).
    pub fn input_names(&self) -> Vec<String> {
        let Some(graph) = &self.proto.graph else {
            return Vec::new();
        };
        graph
            .input
            .iter()
            .filter(|input| !graph.initializer.iter().any(|t| t.name == input.name))
            .map(|input| input.name.clone())
            .collect()
    }

    /// Decides which tensors get Q/DQ and which share a scale; Conv nodes
    /// named in `float_nodes`, and with `float_decode` every Conv after the
    /// first Reshape or Softmax (YOLO's box and class decode), stay in float.
    pub fn plan(&self, float_nodes: &[String], float_decode: bool) -> QuantPlan {
        let nodes = self.nodes();
        let constant: HashSet<&str> = self
            .proto
            .graph
            .iter()
            .flat_map(|graph| &graph.initializer)
            .map(|tensor| tensor.name.as_str())
            .chain(
                nodes
                    .iter()
                    .filter(|node| node.op_type == "Constant")
                    .flat_map(|node| node.output.iter().map(String::as_str)),
            )
            .collect();
        let producer = producers(nodes);
        let decode = if float_decode {
            decode_region(nodes, &self.input_names())
        } else {
            HashSet::new()
        };
        let quantized_convs: Vec<usize> = nodes
            .iter()
            .enumerate()
            .filter(|(index, node)| {
                node.op_type == "Conv"
                    && !decode.contains(index)
                    && !float_nodes.contains(&node.name)
            })
            .map(|(index, _)| index)
            .collect();
        let float_convs = nodes
            .iter()
            .enumerate()
            .filter(|(index, node)| node.op_type == "Conv" && !quantized_convs.contains(index))
            .map(|(_, node)| node.name.clone())
            .collect();

        // Walk back from each quantized Conv's input through the operators
        // TensorRT runs in INT8 without changing scale, collecting the
        // tensors that get Q/DQ and the edges that read them.
        let mut groups = UnionFind::default();
        let mut quantized: Vec<String> = Vec::new();
        let mut edges: HashSet<(usize, usize)> = HashSet::new();
        let mut pending: Vec<String> = Vec::new();
        let mark = |tensor: &str, pending: &mut Vec<String>, quantized: &mut Vec<String>| {
            if !quantized.iter().any(|known| known == tensor) {
                quantized.push(tensor.to_owned());
                pending.push(tensor.to_owned());
            }
        };
        for &conv in &quantized_convs {
            let input = &nodes[conv].input[0];
            edges.insert((conv, 0));
            groups.add(input);
            mark(input, &mut pending, &mut quantized);
        }
        while let Some(tensor) = pending.pop() {
            let Some(&index) = producer.get(tensor.as_str()) else {
                continue;
            };
            let node = &nodes[index];
            let data_inputs: Vec<(usize, &String)> = node
                .input
                .iter()
                .enumerate()
                .filter(|(_, input)| !input.is_empty() && !constant.contains(input.as_str()))
                .collect();
            match node.op_type.as_str() {
                "Concat" => {
                    for (slot, input) in data_inputs {
                        edges.insert((index, slot));
                        groups.union(&tensor, input);
                        mark(input, &mut pending, &mut quantized);
                    }
                }
                "MaxPool" | "Resize" => {
                    if let Some(&(slot, input)) = data_inputs.first() {
                        edges.insert((index, slot));
                        groups.union(&tensor, input);
                        mark(input, &mut pending, &mut quantized);
                    }
                }
                "Add" if data_inputs.len() == 2 => {
                    let (first, second) = (data_inputs[0].1, data_inputs[1].1);
                    groups.add(&tensor);
                    groups.union(first, second);
                    for (slot, input) in data_inputs {
                        edges.insert((index, slot));
                        mark(input, &mut pending, &mut quantized);
                    }
                }
                _ => {}
            }
        }
        quantized.sort_by_key(|tensor| first_use(nodes, tensor));
        let group_of: BTreeMap<String, usize> = quantized
            .iter()
            .map(|tensor| (tensor.clone(), groups.find(tensor)))
            .collect();
        QuantPlan {
            quantized_convs: quantized_convs
                .iter()
                .map(|&index| nodes[index].name.clone())
                .collect(),
            float_convs,
            tensors: quantized,
            group_of,
            edges,
            conv_indices: quantized_convs,
        }
    }

    /// The model with Q/DQ pairs on every tensor of `plan` (scale
    /// `amax[tensor] / 127`) and per-channel INT8 weights on every quantized
    /// Conv; everything else as it was.
    pub fn with_qdq(&self, plan: &QuantPlan, amax: &BTreeMap<String, f32>) -> ModelProto {
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().expect("checked on load");
        let old_nodes = std::mem::take(&mut graph.node);
        let mut weight_nodes = Vec::new();
        for &conv in &plan.conv_indices {
            let weight_name = old_nodes[conv].input[1].clone();
            // Weights shared by several Convs are converted once.
            let Some(position) = graph
                .initializer
                .iter()
                .position(|tensor| tensor.name == weight_name)
            else {
                continue;
            };
            let weight = graph.initializer.remove(position);
            let (int8, scales) = quantize_per_channel(&weight);
            let channels = scales.len() as i64;
            graph.initializer.push(int8_tensor(
                &format!("{weight_name}_int8"),
                &weight.dims,
                &int8,
            ));
            graph.initializer.push(float_tensor(
                &format!("{weight_name}_scale"),
                &[channels],
                &scales,
            ));
            graph.initializer.push(int8_tensor(
                &format!("{weight_name}_zero_point"),
                &[channels],
                &vec![0; scales.len()],
            ));
            graph.input.retain(|input| input.name != weight_name);
            weight_nodes.push(node(
                "DequantizeLinear",
                &format!("{weight_name}_DequantizeLinear"),
                &[
                    format!("{weight_name}_int8"),
                    format!("{weight_name}_scale"),
                    format!("{weight_name}_zero_point"),
                ],
                &weight_name,
                Some(0),
            ));
        }
        let mut activation_nodes: HashMap<usize, Vec<NodeProto>> = HashMap::new();
        let producer = producers(&old_nodes);
        let mut graph_input_nodes = Vec::new();
        for tensor in &plan.tensors {
            let scale = amax.get(tensor).copied().unwrap_or(0.0) / 127.0;
            // A tensor that was zero on every image still needs a valid
            // (positive) scale; its values quantize to 0 whatever it is.
            let scale = if scale > 0.0 && scale.is_finite() {
                scale
            } else {
                1.0 / 127.0
            };
            graph
                .initializer
                .push(float_tensor(&format!("{tensor}_scale"), &[], &[scale]));
            graph
                .initializer
                .push(int8_tensor(&format!("{tensor}_zero_point"), &[], &[0]));
            let parameters = [format!("{tensor}_scale"), format!("{tensor}_zero_point")];
            let pair = vec![
                node(
                    "QuantizeLinear",
                    &format!("{tensor}_QuantizeLinear"),
                    &[tensor.clone(), parameters[0].clone(), parameters[1].clone()],
                    &format!("{tensor}_quantized"),
                    None,
                ),
                node(
                    "DequantizeLinear",
                    &format!("{tensor}_DequantizeLinear"),
                    &[
                        format!("{tensor}_quantized"),
                        parameters[0].clone(),
                        parameters[1].clone(),
                    ],
                    &format!("{tensor}_dequantized"),
                    None,
                ),
            ];
            match producer.get(tensor.as_str()) {
                Some(&index) => activation_nodes.entry(index).or_default().extend(pair),
                None => graph_input_nodes.extend(pair),
            }
        }
        let mut nodes = weight_nodes;
        nodes.extend(graph_input_nodes);
        for (index, mut original) in old_nodes.into_iter().enumerate() {
            for (slot, input) in original.input.iter_mut().enumerate() {
                if plan.edges.contains(&(index, slot)) {
                    *input = format!("{input}_dequantized");
                }
            }
            nodes.push(original);
            if let Some(pairs) = activation_nodes.remove(&index) {
                nodes.extend(pairs);
            }
        }
        graph.node = nodes;
        proto
    }
}

/// Where Q/DQ goes in one model.
#[derive(Clone, Debug)]
pub struct QuantPlan {
    /// Conv nodes that run in INT8.
    pub quantized_convs: Vec<String>,
    /// Conv nodes kept in float.
    pub float_convs: Vec<String>,
    /// Activation tensors that get a Q/DQ pair, in graph order.
    pub tensors: Vec<String>,
    /// Tensors with the same number must share one scale.
    pub group_of: BTreeMap<String, usize>,
    /// (node, input slot) pairs that read the dequantized tensor.
    edges: HashSet<(usize, usize)>,
    conv_indices: Vec<usize>,
}

impl QuantPlan {
    /// One amax per tensor, each group taking the largest of its members so
    /// that none of them is clipped harder than it was calibrated for.
    pub fn shared_amax(&self, measured: &BTreeMap<String, f32>) -> BTreeMap<String, f32> {
        let mut per_group: HashMap<usize, f32> = HashMap::new();
        for (tensor, &group) in &self.group_of {
            let amax = measured.get(tensor).copied().unwrap_or(0.0);
            let entry = per_group.entry(group).or_insert(0.0);
            *entry = entry.max(amax);
        }
        self.group_of
            .iter()
            .map(|(tensor, group)| (tensor.clone(), per_group[group]))
            .collect()
    }
}

/// Nodes downstream of the first Reshape or Softmax of image features:
/// YOLO's decode of boxes and classes, whose distribution-focal Conv reads
/// probabilities that INT8 cannot resolve. Shape arithmetic (the anchor
/// grid, computed with Reshape too) does not count as features: it reaches
/// the image only through a Shape node.
fn decode_region(nodes: &[NodeProto], graph_inputs: &[String]) -> HashSet<usize> {
    let mut features: HashSet<&str> = graph_inputs.iter().map(String::as_str).collect();
    let mut decoded: HashSet<&str> = HashSet::new();
    let mut region = HashSet::new();
    // ONNX lists nodes in topological order, so one pass suffices.
    for (index, node) in nodes.iter().enumerate() {
        let reads =
            |set: &HashSet<&str>| node.input.iter().any(|input| set.contains(input.as_str()));
        let starts = matches!(node.op_type.as_str(), "Reshape" | "Softmax")
            && node
                .input
                .first()
                .is_some_and(|input| features.contains(input.as_str()));
        if starts || reads(&decoded) {
            region.insert(index);
            decoded.extend(node.output.iter().map(String::as_str));
        }
        if node.op_type != "Shape" && reads(&features) {
            features.extend(node.output.iter().map(String::as_str));
        }
    }
    region
}

/// The node that writes each tensor.
fn producers(nodes: &[NodeProto]) -> HashMap<&str, usize> {
    nodes
        .iter()
        .enumerate()
        .flat_map(|(index, node)| {
            node.output
                .iter()
                .map(move |output| (output.as_str(), index))
        })
        .collect()
}

fn first_use(nodes: &[NodeProto], tensor: &str) -> usize {
    nodes
        .iter()
        .position(|node| node.input.iter().any(|input| input == tensor))
        .unwrap_or(usize::MAX)
}

/// Per-output-channel symmetric INT8: scale = max|w| / 127 per channel
/// (axis 0), q = round_half_even(w / scale).
fn quantize_per_channel(weight: &TensorProto) -> (Vec<i8>, Vec<f32>) {
    let values = float_values(weight).expect("checked on load");
    let channels = weight.dims.first().copied().unwrap_or(1).max(1) as usize;
    let per_channel = values.len() / channels;
    let mut int8 = Vec::with_capacity(values.len());
    let mut scales = Vec::with_capacity(channels);
    for channel in values.chunks(per_channel.max(1)) {
        let amax = channel
            .iter()
            .fold(0.0f32, |max, value| max.max(value.abs()));
        let scale = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        int8.extend(channel.iter().map(|&value| quantize(value, scale)));
        scales.push(scale);
    }
    (int8, scales)
}

/// ONNX QuantizeLinear to int8 with zero point 0.
pub fn quantize(value: f32, scale: f32) -> i8 {
    (value / scale).round_ties_even().clamp(-128.0, 127.0) as i8
}

fn float_values(tensor: &TensorProto) -> Result<Vec<f32>, String> {
    if tensor.data_type != DataType::Float as i32 {
        return Err(format!("element type {} is not FP32", tensor.data_type));
    }
    if tensor.data_location == Some(1) {
        return Err("stored in an external file".into());
    }
    if !tensor.raw_data.is_empty() {
        return Ok(tensor
            .raw_data
            .chunks_exact(4)
            .map(|bytes| f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
            .collect());
    }
    Ok(tensor.float_data.clone())
}

fn float_tensor(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::Float as i32,
        raw_data: values
            .iter()
            .flat_map(|value| value.to_le_bytes())
            .collect(),
        ..TensorProto::default()
    }
}

fn int8_tensor(name: &str, dims: &[i64], values: &[i8]) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: values.iter().map(|&value| value as u8).collect(),
        ..TensorProto::default()
    }
}

fn node(
    op_type: &str,
    name: &str,
    inputs: &[String],
    output: &str,
    axis: Option<i64>,
) -> NodeProto {
    NodeProto {
        op_type: op_type.to_owned(),
        name: name.to_owned(),
        input: inputs.to_vec(),
        output: vec![output.to_owned()],
        attribute: axis
            .map(|axis| AttributeProto {
                name: "axis".into(),
                r#type: AttributeType::Int as i32,
                i: axis,
                ..AttributeProto::default()
            })
            .into_iter()
            .collect(),
        ..NodeProto::default()
    }
}

/// Scale-sharing groups of tensor names.
#[derive(Default)]
struct UnionFind {
    parent: HashMap<String, String>,
    ids: HashMap<String, usize>,
}

impl UnionFind {
    fn add(&mut self, tensor: &str) {
        self.parent
            .entry(tensor.to_owned())
            .or_insert_with(|| tensor.to_owned());
    }

    fn root(&mut self, tensor: &str) -> String {
        self.add(tensor);
        let mut current = tensor.to_owned();
        while self.parent[&current] != current {
            current = self.parent[&current].clone();
        }
        self.parent.insert(tensor.to_owned(), current.clone());
        current
    }

    fn union(&mut self, a: &str, b: &str) {
        let (a, b) = (self.root(a), self.root(b));
        if a != b {
            // The lexically smaller root wins, so that groups do not depend
            // on the order the walk met them in.
            let (keep, merge) = if a < b { (a, b) } else { (b, a) };
            self.parent.insert(merge, keep);
        }
    }

    fn find(&mut self, tensor: &str) -> usize {
        let root = self.root(tensor);
        let next = self.ids.len();
        *self.ids.entry(root).or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::{GraphProto, OperatorSetIdProto, TypeProto, ValueInfoProto, type_proto};

    fn op(op_type: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op_type.into(),
            name: name.into(),
            input: inputs.iter().map(|input| input.to_string()).collect(),
            output: vec![output.into()],
            ..NodeProto::default()
        }
    }

    /// x → c1 → SiLU → a → c2 → b → MaxPool → m; Concat(a, m) → c3 → d;
    /// Add(d, a) → c4 → e → Reshape → c5 (the decode).
    fn small_detector() -> OnnxModel {
        let weight = |name: &str| float_tensor(name, &[2, 1, 1, 1], &[0.5, -0.25]);
        let nodes = vec![
            op("Conv", "c1", &["x", "w1"], "y1"),
            op("Sigmoid", "sigmoid", &["y1"], "s"),
            op("Mul", "silu", &["y1", "s"], "a"),
            op("Conv", "c2", &["a", "w2"], "b"),
            op("MaxPool", "pool", &["b"], "m"),
            op("Concat", "concat", &["a", "m"], "cat"),
            op("Conv", "c3", &["cat", "w3"], "d"),
            op("Add", "residual", &["d", "a"], "sum"),
            op("Conv", "c4", &["sum", "w4"], "e"),
            op("Reshape", "view", &["e", "shape"], "r"),
            op("Conv", "c5", &["r", "w5"], "out"),
        ];
        let float_input = |name: &str| ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: None,
                })),
                ..TypeProto::default()
            }),
            ..ValueInfoProto::default()
        };
        let mut initializer: Vec<TensorProto> = ["w1", "w2", "w3", "w4", "w5"]
            .into_iter()
            .map(weight)
            .collect();
        initializer.push(TensorProto {
            name: "shape".into(),
            dims: vec![4],
            data_type: DataType::Int64 as i32,
            int64_data: vec![1, 2, 1, 1],
            ..TensorProto::default()
        });
        OnnxModel {
            proto: ModelProto {
                ir_version: 8,
                opset_import: vec![OperatorSetIdProto {
                    domain: String::new(),
                    version: 17,
                }],
                graph: Some(GraphProto {
                    node: nodes,
                    initializer,
                    input: vec![float_input("x")],
                    output: vec![float_input("out")],
                    ..GraphProto::default()
                }),
                ..ModelProto::default()
            },
        }
    }

    #[test]
    fn conv_inputs_and_the_int8_region_behind_them_get_qdq() {
        let plan = small_detector().plan(&[], true);
        assert_eq!(plan.quantized_convs, ["c1", "c2", "c3", "c4"]);
        assert_eq!(plan.float_convs, ["c5"], "the decode stays in float");
        let mut tensors = plan.tensors.clone();
        tensors.sort();
        assert_eq!(tensors, ["a", "b", "cat", "d", "m", "sum", "x"]);
    }

    #[test]
    fn concat_and_add_inputs_share_one_scale() {
        let plan = small_detector().plan(&[], true);
        let group = |tensor: &str| plan.group_of[tensor];
        // Concat: its inputs and output; MaxPool: its input and output.
        assert_eq!(group("a"), group("m"));
        assert_eq!(group("a"), group("cat"));
        assert_eq!(group("m"), group("b"));
        // Add: both inputs (the output is a scale of its own).
        assert_eq!(group("d"), group("a"));
        assert_ne!(group("sum"), group("a"));
        assert_ne!(group("x"), group("a"));

        let measured = BTreeMap::from([
            ("a".to_owned(), 1.0),
            ("b".to_owned(), 4.0),
            ("cat".to_owned(), 2.0),
            ("d".to_owned(), 3.0),
            ("m".to_owned(), 4.0),
            ("sum".to_owned(), 5.0),
            ("x".to_owned(), 1.0),
        ]);
        let shared = plan.shared_amax(&measured);
        for tensor in ["a", "b", "cat", "d", "m"] {
            assert_eq!(shared[tensor], 4.0, "{tensor}");
        }
        assert_eq!((shared["sum"], shared["x"]), (5.0, 1.0));
    }

    #[test]
    fn float_nodes_stay_float_and_nothing_walks_back_from_them() {
        let plan = small_detector().plan(&["c3".to_owned()], true);
        assert!(plan.float_convs.contains(&"c3".to_owned()));
        assert!(!plan.tensors.contains(&"cat".to_owned()));
        assert!(!plan.tensors.contains(&"m".to_owned()));
    }

    #[test]
    fn the_qdq_model_rewires_only_quantized_edges_in_graph_order() {
        let model = small_detector();
        let plan = model.plan(&[], true);
        let amax: BTreeMap<String, f32> = plan
            .tensors
            .iter()
            .map(|tensor| (tensor.clone(), 2.54))
            .collect();
        let proto = model.with_qdq(&plan, &amax);
        let graph = proto.graph.unwrap();
        let by_name = |name: &str| graph.node.iter().find(|node| node.name == name).unwrap();
        assert_eq!(by_name("concat").input, ["a_dequantized", "m_dequantized"]);
        assert_eq!(
            by_name("residual").input,
            ["d_dequantized", "a_dequantized"]
        );
        assert_eq!(by_name("c1").input, ["x_dequantized", "w1"]);
        // The SiLU and the decode read the original tensors.
        assert_eq!(by_name("silu").input, ["y1", "s"]);
        assert_eq!(by_name("c5").input, ["r", "w5"]);

        // Weights: int8 per output channel behind a DequantizeLinear on axis 0.
        let dequantize = by_name("w1_DequantizeLinear");
        assert_eq!(dequantize.input, ["w1_int8", "w1_scale", "w1_zero_point"]);
        assert_eq!(dequantize.attribute[0].i, 0);
        let tensor = |name: &str| graph.initializer.iter().find(|t| t.name == name).unwrap();
        assert_eq!(tensor("w1_int8").data_type, DataType::Int8 as i32);
        assert_eq!(tensor("w1_int8").raw_data, [127u8, 0x81]); // 127, -127
        assert_eq!(
            float_values(tensor("w1_scale")).unwrap(),
            [0.5 / 127.0, 0.25 / 127.0]
        );
        assert!(graph.initializer.iter().all(|t| t.name != "w1"));
        assert!(
            graph.initializer.iter().any(|t| t.name == "w5"),
            "float Conv keeps FP32 weights"
        );
        // Activations: scale amax/127, zero point int8 0.
        assert_eq!(float_values(tensor("a_scale")).unwrap(), [0.02]);
        assert_eq!(tensor("a_zero_point").raw_data, [0u8]);

        // Every input is defined before it is used.
        let mut defined: HashSet<String> =
            graph.initializer.iter().map(|t| t.name.clone()).collect();
        defined.insert("x".into());
        for node in &graph.node {
            for input in &node.input {
                assert!(
                    defined.contains(input),
                    "{} reads {input} before it exists",
                    node.name
                );
            }
            defined.extend(node.output.iter().cloned());
        }
    }

    #[test]
    fn models_that_are_not_fp32_or_already_quantized_are_refused() {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("model.onnx");
        let refusal = |proto: &ModelProto| {
            std::fs::write(&path, proto.encode_to_vec()).unwrap();
            OnnxModel::load(&path).unwrap_err().to_string()
        };
        let mut int8_input = small_detector().proto;
        let graph = int8_input.graph.as_mut().unwrap();
        if let Some(type_proto::Value::TensorType(tensor)) =
            &mut graph.input[0].r#type.as_mut().unwrap().value
        {
            tensor.elem_type = DataType::Int8 as i32;
        }
        assert!(refusal(&int8_input).contains("input \"x\" is not FP32"));

        let model = small_detector();
        let plan = model.plan(&[], true);
        let quantized = model.with_qdq(&plan, &BTreeMap::new());
        assert!(refusal(&quantized).contains("already quantized"));

        let mut old_opset = small_detector().proto;
        old_opset.opset_import[0].version = 11;
        assert!(refusal(&old_opset).contains("opset is 11"));

        std::fs::write(&path, b"not protobuf at all").unwrap();
        let garbage = OnnxModel::load(&path).unwrap_err().to_string();
        assert!(garbage.contains("not an ONNX protobuf"), "{garbage}");
    }

    #[test]
    fn a_float_set_naming_no_conv_is_refused() {
        let model = small_detector();
        let path = Path::new("small.onnx");
        assert!(model.check_float_nodes(path, &["c3".to_owned()]).is_ok());
        for wrong in ["c33", "silu"] {
            let error = model
                .check_float_nodes(path, &[wrong.to_owned()])
                .unwrap_err();
            assert!(
                error
                    .to_string()
                    .contains(&format!("{wrong:?}, which is not a Conv")),
                "{error}"
            );
        }
    }

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        assert_eq!(quantize(2.5, 1.0), 2);
        assert_eq!(quantize(3.5, 1.0), 4);
        assert_eq!(quantize(-2.5, 1.0), -2);
        assert_eq!(quantize(1000.0, 1.0), 127);
        assert_eq!(quantize(-1000.0, 1.0), -128);
    }
}
