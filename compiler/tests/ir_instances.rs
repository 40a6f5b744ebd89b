//! The IR keeps the block instances sema expanded: prefix, block, parent, nodes, inputs and
//! output, for plain calls, nested calls, `unet(...)` resblocks and ODE functions.

use tdspec_compiler::ir::{Graph, Instance, ModelIr, Op};
use tdspec_compiler::sema::check_source;

fn model(src: &str) -> ModelIr {
    match check_source(src) {
        Ok(mut m) => m.remove(0),
        Err(d) => panic!("spec does not check: {d:#?}"),
    }
}

fn reference(spec: &str) -> ModelIr {
    let path = format!("{}/../specs/{spec}.tds", env!("CARGO_MANIFEST_DIR"));
    model(&std::fs::read_to_string(path).expect("read spec"))
}

fn named(g: &Graph, name: &str) -> usize {
    g.nodes
        .iter()
        .position(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node `{name}`"))
}

fn instance<'g>(g: &'g Graph, prefix: &str) -> &'g Instance {
    g.instances
        .iter()
        .find(|i| i.prefix == prefix)
        .unwrap_or_else(|| panic!("no instance `{prefix}`"))
}

const NESTED: &str = "model m {
    input x: image[4, 8, 8]
    time  t: step(10), per_sample
    norm  = group(2)
    embed e = sinusoidal(8) | linear(8)
    block inner(out)(h) {
        a = h | norm | conv3(out) as c
        return a + inject(e) as p
    }
    block outer(out)(h) {
        b = h | inner(out) as first | relu
        return b | inner(out) as second
    }
    y = x | conv3(4) | outer(8)
    return y | conv3(4)
}";

#[test]
fn nested_calls_are_instances_with_parents() {
    let m = model(NESTED);
    let g = &m.graph;
    let prefixes: Vec<&str> = g.instances.iter().map(|i| i.prefix.as_str()).collect();
    assert_eq!(prefixes, ["y.1", "y.1.first", "y.1.second"]);
    let outer = instance(g, "y.1");
    assert_eq!((outer.block.as_str(), outer.parent), ("outer", None));
    for inner in &g.instances[1..] {
        assert_eq!((inner.block.as_str(), inner.parent), ("inner", Some(0)));
        // Every node of a nested instance is one of its parent's.
        assert!(inner.nodes.iter().all(|n| outer.nodes.contains(n)));
    }
    // The embedding and t are shared by the graph, not created by an instance.
    let emb = named(g, "e.1");
    assert!(g.instances.iter().all(|i| !i.nodes.contains(&emb)));
    for i in &g.instances {
        assert!(i.nodes.windows(2).all(|w| w[0] < w[1]), "graph order");
        for &n in &i.nodes {
            assert!(g.nodes[n].name.starts_with(&format!("{}.", i.prefix)));
        }
        assert!(i.nodes.contains(&i.output));
    }
    // Inputs: the block's input first, then the embedding; the outer one returns `second`.
    assert_eq!(outer.inputs, [named(g, "y.0"), emb]);
    assert_eq!(outer.output, named(g, "y.1.second.p"));
    let second = instance(g, "y.1.second");
    assert_eq!(second.inputs, [named(g, "y.1.b.1"), emb]);
}

#[test]
fn unet_resblocks_are_instances() {
    let m = reference("small_ddpm_mnist");
    let g = &m.graph;
    let prefixes: Vec<&str> = g.instances.iter().map(|i| i.prefix.as_str()).collect();
    assert_eq!(
        prefixes,
        [
            "down.0.res0",
            "down.1.res0",
            "mid.res0",
            "mid.res1",
            "up.1.res0",
            "up.1.res1",
            "up.0.res0",
            "up.0.res1"
        ]
    );
    for i in &g.instances {
        assert_eq!((i.block.as_str(), i.parent), ("res", None));
        assert_eq!(g.nodes[i.output].name, format!("{}.out.add", i.prefix));
        // The UNet's own layers (attention, down- and up-sampling) belong to no block.
        assert!(i
            .nodes
            .iter()
            .all(|&n| !matches!(g.nodes[n].op, Op::Attention { .. })));
    }
    let up = instance(g, "up.1.res0");
    assert_eq!(up.inputs[0], named(g, "up.1.cat0"));
}

#[test]
fn an_ode_function_names_its_block_and_is_no_instance_of_itself() {
    let m = reference("odenet_mnist");
    let ode = m
        .graph
        .nodes
        .iter()
        .find_map(|n| match &n.op {
            Op::Ode { func, .. } => Some(func),
            _ => None,
        })
        .expect("an ODE block");
    assert_eq!(ode.block, "odefunc");
    assert!(ode.graph.instances.is_empty());
    assert!(m.graph.instances.is_empty());
}
