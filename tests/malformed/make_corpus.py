"""Generate the malformed-spec corpus: ``cases/NAME.yaml`` plus ``expected.json``.

Every case is a spec a user (or an attacker) could hand to ``archspec check``; the
golden says which error it must give, where (line:col) and with which message.

    .venv/bin/python tests/malformed/make_corpus.py            # write the cases
    .venv/bin/python tests/malformed/make_corpus.py --goldens  # also rewrite expected.json

``--goldens`` records what archspec answers today: review the diff of expected.json
(every message must be one a user deserves) before committing it. Helper files that
cases include (``use:``) start with ``_`` and are not cases themselves. Cases that need
symlinks are built at test time in tests/test_malformed.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
EXPECTED = HERE / "expected.json"

# name -> (text or bytes, extra CLI args)
corpus: dict[str, tuple[str | bytes, list[str]]] = {}
helpers: dict[str, str] = {}


def case(name: str, text: str | bytes, *args: str) -> None:
    assert name not in corpus, name
    corpus[name] = (text, list(args))


HEAD = "archspec: 1\nname: t\n"


def spec(nodes: str, *, inputs: str = "inputs: {x: [3, 8, 8]}\n", before: str = "", after: str = "",
         outputs: str | None = None) -> str:
    """A small spec around ``nodes`` (one node per line, indented by the caller's text)."""
    if outputs is None:
        last = [ln.strip().split(":")[0] for ln in nodes.splitlines() if ln.startswith("  ") and not ln.startswith("   ")]
        outputs = f"outputs: [{last[-1] if last else 'r'}]\n"
    return HEAD + before + inputs + "nodes:\n" + nodes + after + outputs


def node(line: str) -> str:
    return spec("  " + line + "\n")


BLOCK = ("blocks:\n  basic:\n    params: [out, {stride: 1}]\n    nodes:\n"
         "      conv: {op: conv, out: $out, k: 3, stride: $stride}\n      bn: {op: bn}\n"
         "      add: {op: add, in: [bn, input]}\n")

# -- YAML syntax ------------------------------------------------------------------------
case("yaml_tab_indent", "archspec: 1\n\tname: t\n")
case("yaml_unclosed_flow_map", spec("  c: {op: conv, out: 3, k: 3\n  r: {op: relu}\n"))
case("yaml_unclosed_flow_seq", HEAD + "inputs: {x: [3, 8, 8}\nnodes:\n  r: {op: relu}\noutputs: [r]\n")
case("yaml_unclosed_quote", HEAD + "doc: \"never closed\ninputs: {x: [3, 8, 8]}\n")
case("yaml_bad_indent", "archspec: 1\nname: t\n  inputs: {x: [3, 8, 8]}\n")
case("yaml_list_arrow_edge", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges:\n  - [a, x] -> b\n"))
case("yaml_bare_expr_in_flow", node("c: {op: conv, out: ${2*4}, k: 3}"))
case("yaml_nul_byte", "archspec: 1\nname: t\x00\n")
case("yaml_bell_char", "archspec: 1\nname: t\x07x\n")
case("yaml_invalid_utf8", b"archspec: 1\nname: caf\xe9\n")
case("yaml_empty_file", "")
case("yaml_only_comments", "# nothing here\n# at all\n")
case("yaml_two_documents", HEAD + "---\narchspec: 1\n")
case("yaml_top_level_list", "- archspec: 1\n- name: t\n")
case("yaml_top_level_scalar", "just a string\n")
case("yaml_complex_key", "archspec: 1\n? [a, b]\n: 1\n")
case("yaml_null_key", "archspec: 1\n~: 1\n")
case("yaml_float_key", "archspec: 1\n1.5: x\n")
case("yaml_bool_key", "archspec: 1\ntrue: x\n")
case("yaml_mapping_in_plain", "archspec: 1\nname: a: b\n")
case("yaml_stray_bracket", "archspec: 1\nname: t]\ninputs: ]\n")
case("yaml_block_seq_in_map", "archspec: 1\nname: t\n- a\n")
case("yaml_directive_11", "%YAML 1.1\n%YAML 1.1\n---\narchspec: 1\n")

# -- code-running and other tags --------------------------------------------------------
case("tag_python_apply_system", "!!python/object/apply:os.system ['touch pwned']\n")
case("tag_python_apply_nested", HEAD + "doc: !!python/object/apply:os.system ['touch pwned']\n")
case("tag_python_name", HEAD + "doc: !!python/name:os.system\n")
case("tag_python_new_popen", HEAD + "doc: !!python/object/new:subprocess.Popen [[touch, pwned]]\n")
case("tag_python_module", HEAD + "doc: !!python/module:os\n")
case("tag_python_object", HEAD + "doc: !!python/object:collections.OrderedDict {}\n")
case("tag_verbatim_python", HEAD + "doc: !<tag:yaml.org,2002:python/object/apply:os.system> [ls]\n")
case("tag_binary", HEAD + "doc: !!binary aGVsbG8=\n")
case("tag_timestamp", HEAD + "doc: !!timestamp 2001-12-14\n")
case("tag_set", HEAD + "doc: !!set {a, b}\n")
case("tag_omap", HEAD + "doc: !!omap [{a: 1}]\n")
case("tag_custom_local", HEAD + "doc: !include other.yaml\n")
case("tag_int_not_int", node("c: {op: conv, out: !!int abc, k: 3}"))
case("tag_bool_maybe", node("c: {op: conv, out: 3, k: 3, bias: !!bool maybe}"))
case("tag_null_not_null", HEAD + "doc: !!null x\n")
case("tag_float_not_number", node("d: {op: dropout, p: !!float half}"))
case("tag_map_on_seq", HEAD + "params: !!map [1, 2]\n")
case("tag_seq_on_map", HEAD + "outputs: !!seq {a: 1}\n")
case("tag_str_on_map", HEAD + "doc: !!str {a: 1}\n")

# -- aliases ----------------------------------------------------------------------------
bomb = "".join(f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))
case("alias_billion_laughs", HEAD + "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + bomb)
case("alias_bomb_in_doc", HEAD + "params:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
     + "".join(f"  {c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)))
case("alias_undefined", HEAD + "doc: *nope\n")
case("alias_self_reference", HEAD + "params: &a {p: *a}\n")
case("alias_merge_key", HEAD + "defaults:\n  conv: &c {bias: false}\n  conv_transpose:\n    <<: *c\n")
case("alias_merge_key_literal", HEAD + "params:\n  <<: {a: 1}\n")
case("alias_as_key", HEAD + "params:\n  a: &m {x: 1}\n  ? *m\n  : 2\n")
case("alias_yaml_nodes_limit", spec("  r: {op: relu}\n"), "--max-yaml-nodes", "10")

# -- deep nesting -----------------------------------------------------------------------
case("deep_flow_seq_30k", "archspec: 1\nname: " + "[" * 30000 + "]" * 30000 + "\n")
case("deep_flow_map_30k", "archspec: 1\nname: " + "{a: " * 30000 + "1" + "}" * 30000 + "\n")
case("deep_block_map_100", "archspec: 1\n" + "".join("  " * i + f"k{i}:\n" for i in range(100)) + "  " * 100 + "v: 1\n")
case("deep_seq_65", "archspec: 1\nparams: {a: " + "[" * 65 + "]" * 65 + "}\n")
case("deep_depth_flag", spec("  r: {op: relu}\n"), "--max-depth", "2")
groups = "".join("  " * (i + 1) + f"g{i}:\n" + "  " * (i + 2) + "nodes:\n" for i in range(0, 70, 2))
case("deep_nested_groups", HEAD + "inputs: {x: [3, 8, 8]}\nnodes:\n" + groups.replace("  ", " ") + " " * 72 + "r: {op: relu}\noutputs: [g0]\n")

# -- duplicate keys ---------------------------------------------------------------------
case("dup_top_level", HEAD + "name: u\ninputs: {x: [3, 8, 8]}\n")
case("dup_node", spec("  r: {op: relu}\n  s: {op: relu}\n  r: {op: sigmoid}\n"))
case("dup_attr", node("c: {op: conv, out: 3, k: 3, out: 4}"))
case("dup_param", HEAD + "params: {w: 1, w: 2}\n")
case("dup_block", HEAD + "blocks:\n  b: {nodes: {r: {op: relu}}}\n  b: {nodes: {r: {op: relu}}}\n")
case("dup_input", HEAD + "inputs: {x: [3, 8, 8], x: [1, 8, 8]}\n")
case("dup_flow_and_block", spec("  c:\n    op: conv\n    out: 3\n    k: 3\n    op: relu\n"))

# -- YAML 1.1 surprises -----------------------------------------------------------------
case("yaml11_bias_no", node("c: {op: conv, out: 3, k: 3, bias: no}"))
case("yaml11_bias_yes", node("c: {op: conv, out: 3, k: 3, bias: yes}"))
case("yaml11_bias_on", node("c: {op: conv, out: 3, k: 3, bias: on}"))
case("yaml11_bias_off", node("c: {op: conv, out: 3, k: 3, bias: off}"))
case("yaml11_when_off", node("r: {op: relu, when: off}"))
case("yaml11_ceil_mode_y", node("p: {op: maxpool, k: 2, ceil_mode: y}"))
case("yaml11_init_yes", spec("  r: {op: relu}\n", before="init: {zero_init_residual: yes}\n"))
case("yaml11_underscore_int", node("c: {op: conv, out: 1_000, k: 3}"))
case("yaml11_sexagesimal", node("c: {op: conv, out: 3, k: 1:30}"))
case("yaml11_float_1e3_not_int", node("c: {op: conv, out: 1e3, k: 3}"))
case("yaml11_version_float", spec("  r: {op: relu}\n").replace("archspec: 1", "archspec: 1.1"))
case("yaml11_version_string", spec("  r: {op: relu}\n").replace("archspec: 1", "archspec: '1'"))

# -- huge numbers -----------------------------------------------------------------------
case("huge_int_30_digits", node("c: {op: conv, out: 123456789012345678901234567890, k: 3}"))
case("huge_int_5000_digits", node("c: {op: conv, out: " + "9" * 5000 + ", k: 3}"))
case("huge_float_overflow", node("u: {op: upsample, scale: 1e400}"))
case("huge_float_long", node("d: {op: dropout, p: 0." + "1" * 80 + "}"))
case("huge_inf_scale", node("u: {op: upsample, scale: .inf}"))
case("huge_nan_p", node("d: {op: dropout, p: .nan}"))
case("huge_hex", node("c: {op: conv, out: 0xFFFFFFFFFFFFFFFFFFFFFFFF, k: 3}"))
case("huge_param_override", spec("  c: {op: conv, out: $w, k: 3}\n", before="params: {w: 4}\n"),
     "-p", "w=100000000000000000000000")
case("huge_long_string", HEAD + "doc: " + "a" * 5000 + "\n")

# -- bad dates --------------------------------------------------------------------------
case("date_as_int", node("c: {op: conv, out: 2001-13-45, k: 3}"))
case("date_as_version", spec("  r: {op: relu}\n").replace("archspec: 1", "archspec: 2024-01-01"))
case("date_as_input_size", spec("  r: {op: relu}\n", inputs="inputs: {x: [3, 2001-01-01, 8]}\n"))

# -- wrong types and unknown fields, top level ------------------------------------------
case("top_missing_archspec", "name: t\ninputs: {x: [3, 8, 8]}\nnodes: {r: {op: relu}}\noutputs: [r]\n")
case("top_archspec_2", spec("  r: {op: relu}\n").replace("archspec: 1", "archspec: 2"))
case("top_missing_name", "archspec: 1\ninputs: {x: [3, 8, 8]}\nnodes: {r: {op: relu}}\noutputs: [r]\n")
case("top_missing_inputs", HEAD + "nodes: {r: {op: relu}}\noutputs: [r]\n")
case("top_missing_nodes", HEAD + "inputs: {x: [3, 8, 8]}\noutputs: [r]\n")
case("top_missing_outputs", HEAD + "inputs: {x: [3, 8, 8]}\nnodes: {r: {op: relu}}\n")
case("top_unknown_field", spec("  r: {op: relu}\n", before="output: [r]\n"))
case("top_name_list", spec("  r: {op: relu}\n").replace("name: t", "name: [t]"))
case("top_doc_int", spec("  r: {op: relu}\n", before="doc: 5\n"))
case("top_params_list", spec("  r: {op: relu}\n", before="params: [a, b]\n"))
case("top_inputs_list", spec("  r: {op: relu}\n", inputs="inputs: [3, 8, 8]\n"))
case("top_input_not_list", spec("  r: {op: relu}\n", inputs="inputs: {x: 3}\n"))
case("top_input_zero", spec("  r: {op: relu}\n", inputs="inputs: {x: [0, 8, 8]}\n"))
case("top_input_negative", spec("  r: {op: relu}\n", inputs="inputs: {x: [3, -8, 8]}\n"))
case("top_input_float", spec("  r: {op: relu}\n", inputs="inputs: {x: [3, 8.5, 8]}\n"))
case("top_input_symbol_bool", spec("  r: {op: relu}\n", before="params: {H: true}\n", inputs="inputs: {x: [3, H, 8]}\n"))
case("top_defaults_list", spec("  r: {op: relu}\n", before="defaults: [conv]\n"))
case("top_defaults_unknown_attr", spec("  r: {op: relu}\n", before="defaults:\n  conv: {outt: 3}\n"))
case("top_defaults_unknown_op", spec("  r: {op: relu}\n", before="defaults:\n  convv: {bias: false}\n"))
case("top_projection_kind", spec("  r: {op: relu}\n", before="defaults:\n  projection: {kind: identity}\n"))
case("top_projection_name", spec("  r: {op: relu}\n", before="defaults:\n  projection: {name: down.sample}\n"))
case("top_init_scheme", spec("  r: {op: relu}\n", before="init: {scheme: xavier}\n"))
case("top_init_unknown", spec("  r: {op: relu}\n", before="init: {seed: 1}\n"))
case("top_use_string", spec("  r: {op: relu}\n", before="use: blocks.yaml\n"))
case("top_blocks_list", spec("  r: {op: relu}\n", before="blocks: [basic]\n"))
case("top_nodes_list", HEAD + "inputs: {x: [3, 8, 8]}\nnodes: [relu]\noutputs: [r]\n")
case("top_nodes_empty", HEAD + "inputs: {x: [3, 8, 8]}\nnodes: {}\noutputs: [r]\n")
case("top_edges_string", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges: a -> b\n"))
case("top_outputs_empty", spec("  r: {op: relu}\n", outputs="outputs: []\n"))
case("top_outputs_map", spec("  r: {op: relu}\n", outputs="outputs: {r: [r]}\n"))
case("top_outputs_int", spec("  r: {op: relu}\n", outputs="outputs: [5]\n"))

# -- wrong types and unknown fields, blocks and nodes -----------------------------------
case("block_missing_nodes", spec("  r: {op: relu}\n", before="blocks:\n  b: {params: [out]}\n"))
case("block_params_int", spec("  r: {op: relu}\n", before="blocks:\n  b:\n    params: [1]\n    nodes: {r: {op: relu}}\n"))
case("block_inputs_bad_name", spec("  r: {op: relu}\n", before="blocks:\n  b:\n    inputs: [a-b]\n    nodes: {r: {op: relu}}\n"))
case("block_unknown_field", spec("  r: {op: relu}\n", before="blocks:\n  b:\n    nodes: {r: {op: relu}}\n    outputs: [r]\n"))
case("block_edges_int", spec("  r: {op: relu}\n", before="blocks:\n  b:\n    nodes: {r: {op: relu}}\n    edges: 5\n"))
case("node_null", spec("  r:\n"))
case("node_string", spec("  r: relu\n"))
case("node_no_kind", node("r: {in: x}"))
case("node_unknown_attr", node("c: {op: conv, out: 3, k: 3, kernel: 3}"))
case("node_op_int", node("r: {op: 5}"))
case("node_op_and_block", spec("  r: {op: relu, block: basic}\n", before=BLOCK))
case("node_in_int", node("r: {op: relu, in: 5}"))
case("node_in_list_int", node("r: {op: relu, in: [x, 5]}"))
case("node_when_int", node("r: {op: relu, when: 1}"))
case("node_when_string", node("r: {op: relu, when: maybe}"))
case("node_doc_list", node("r: {op: relu, doc: [a]}"))
case("call_unknown_field", spec("  l: {block: basic, args: {out: 3}, times: 2}\n", before=BLOCK))
case("call_args_int", spec("  l: {block: basic, args: 5}\n", before=BLOCK))
case("call_repeat_zero", spec("  l: {block: basic, repeat: 0, args: {out: 3}}\n", before=BLOCK))
case("call_repeat_negative", spec("  l: {block: basic, repeat: -2, args: {out: 3}}\n", before=BLOCK))
case("call_repeat_text", spec("  l: {block: basic, repeat: twice, args: {out: 3}}\n", before=BLOCK))
case("call_repeat_float", spec("  l: {block: basic, repeat: 1.5, args: {out: 3}}\n", before=BLOCK))
case("call_repeat_expr_zero", spec("  l: {block: basic, repeat: '${0}', args: {out: 3}}\n", before=BLOCK))
case("call_connect_ring", spec("  l: {block: basic, repeat: 2, connect: ring, args: {out: 3}}\n", before=BLOCK))
case("call_names_int", spec("  l: {block: basic, repeat: 2, names: 5, args: {out: 3}}\n", before=BLOCK))
case("call_names_not_ident", spec("  l: {block: basic, repeat: 2, names: 'layer-{i}', args: {out: 3}}\n", before=BLOCK))
case("call_names_repeat", spec("  l: {block: basic, repeat: 2, names: layer, args: {out: 3}}\n", before=BLOCK))
case("call_names_keyword", spec("  l: {block: basic, repeat: 2, names: '{\"if\" if i == 0 else \"x\"}', args: {out: 3}}\n", before=BLOCK))
case("call_names_shadow", spec("  l: {block: basic, repeat: 1, names: forward, args: {out: 3}}\n", before=BLOCK))
case("group_edges_int", node("g: {nodes: {r: {op: relu}}, edges: [5]}"))
case("group_output_int", node("g: {nodes: {r: {op: relu}}, output: 5}"))
case("group_empty", node("g: {nodes: {}}"))
case("share_int", spec("  c: {op: conv, out: 3, k: 3}\n  d: {share: 5}\n"))
case("edges_bad_chain", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges: ['a ->']\n"))
case("edges_unknown_target", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges: ['a -> c']\n"))
case("edges_and_in", spec("  a: {op: relu}\n  b: {op: relu, in: x}\n", after="edges: ['a -> b']\n"))

# -- op attributes ----------------------------------------------------------------------
case("conv_missing_out", node("c: {op: conv, k: 3}"))
case("conv_k_string", node("c: {op: conv, out: 3, k: '3'}"))
case("conv_out_float", node("c: {op: conv, out: 3.0, k: 3}"))
case("conv_out_list", node("c: {op: conv, out: [3], k: 3}"))
case("conv_padding_full", node("c: {op: conv, out: 3, k: 3, padding: full}"))
case("conv_padding_mode", node("c: {op: conv, out: 3, k: 3, padding_mode: mirror}"))
case("conv_groups_zero", node("c: {op: conv, out: 3, k: 3, groups: 0}"))
case("conv_k_zero", node("c: {op: conv, out: 3, k: 0}"))
case("conv_k_list_bad", node("c: {op: conv, out: 3, k: [3, x]}"))
case("dropout_p_big", node("d: {op: dropout, p: 1.5}"))
case("linear_bias_string", spec("  f: {op: flatten}\n  l: {op: linear, out: 3, bias: 'false'}\n"))
case("flatten_start_string", node("f: {op: flatten, start: '0'}"))
case("concat_dim_float", node("c: {op: concat, in: [x, x], dim: 1.5}"))
case("upsample_both", node("u: {op: upsample, scale: 2, size: 16}"))
case("upsample_neither", node("u: {op: upsample}"))
case("upsample_align_nearest", node("u: {op: upsample, scale: 2, align_corners: true}"))
case("upsample_mode", node("u: {op: upsample, scale: 2, mode: area}"))
case("reshape_empty", node("r: {op: reshape, shape: []}"))
case("reshape_zero", node("r: {op: reshape, shape: [0]}"))
case("defaults_bad_value", spec("  c: {op: conv, out: 3, k: 3}\n", before="defaults:\n  conv: {stride: 0}\n"))

# -- unknown ops, blocks, params; expressions -------------------------------------------
case("unknown_op_typo", node("c: {op: convv, out: 3, k: 3}"))
case("unknown_op_case", node("c: {op: Conv, out: 3, k: 3}"))
case("unknown_op_torch_name", node("c: {op: Conv2d, out: 3, k: 3}"))
case("unknown_op_dotted", node("c: {op: torch.nn.Conv2d, out: 3, k: 3}"))
case("unknown_block_typo", spec("  l: {block: basik, args: {out: 3}}\n", before=BLOCK))
case("unknown_block_none", node("l: {block: basic}"))
case("unknown_block_arg", spec("  l: {block: basic, args: {out: 3, strid: 2}}\n", before=BLOCK))
case("missing_block_arg", spec("  l: {block: basic}\n", before=BLOCK))
case("unknown_param_cli", spec("  r: {op: relu}\n", before="params: {width: 4}\n"), "-p", "widht=8")
case("param_kind_cli", spec("  r: {op: relu}\n", before="params: {width: 4}\n"), "-p", "width=wide")
case("param_cli_no_equals", spec("  r: {op: relu}\n", before="params: {width: 4}\n"), "-p", "width")
case("param_name_not_ident", spec("  r: {op: relu}\n", before="params: {a b: 4}\n"))
case("expr_unknown_name", node("c: {op: conv, out: $width, k: 3}"))
case("expr_unknown_name_typo", spec("  c: {op: conv, out: $widht, k: 3}\n", before="params: {width: 4}\n"))
case("expr_div_zero", node("c: {op: conv, out: '${1 // 0}', k: 3}"))
case("expr_import", node("c: {op: conv, out: '${__import__(\"os\").system(\"touch pwned\")}', k: 3}"))
case("expr_dunder_attr", node("c: {op: conv, out: '${(1).__class__.__bases__}', k: 3}"))
case("expr_power_tower", node("c: {op: conv, out: '${9**9**9}', k: 3}"))
case("expr_big_string", node("c: {op: conv, out: '${\"a\" * 10**9}', k: 3}"))
case("expr_open", node("c: {op: conv, out: '${open(\"/etc/passwd\")}', k: 3}"))
case("expr_comprehension", node("c: {op: conv, out: '${[i for i in [1]]}', k: 3}"))
case("expr_lambda", node("c: {op: conv, out: '${(lambda: 1)()}', k: 3}"))
case("expr_syntax", node("c: {op: conv, out: '${1 +}', k: 3}"))
case("expr_unclosed", node("c: {op: conv, out: '${1 + 2', k: 3}"))
case("expr_stray_dollar", node("c: {op: conv, out: '3$', k: 3}"))
case("expr_empty", node("c: {op: conv, out: '${}', k: 3}"))
case("expr_wrong_type", spec("  c: {op: conv, out: $w, k: 3}\n", before="params: {w: wide}\n"))
case("expr_long", node("c: {op: conv, out: '${" + "1+" * 600 + "1}', k: 3}"))
case("expr_in_param_cycle", spec("  r: {op: relu}\n", before="params: {a: $b, b: $a}\n"))

# -- dangling and cyclic references -----------------------------------------------------
case("ref_unknown_in", node("r: {op: relu, in: nope}"))
case("ref_unknown_in_typo", spec("  conv: {op: conv, out: 3, k: 3}\n  r: {op: relu, in: comv}\n"))
case("ref_unknown_in_list", spec("  a: {op: relu}\n  s: {op: add, in: [a, nope]}\n"))
case("ref_unknown_output", spec("  r: {op: relu}\n", outputs="outputs: [nope]\n"))
case("ref_cycle_two", spec("  a: {op: relu, in: b}\n  b: {op: relu, in: a}\n"))
case("ref_cycle_self", node("a: {op: relu, in: a}"))
case("ref_cycle_three", spec("  a: {op: relu, in: c}\n  b: {op: relu, in: a}\n  c: {op: relu, in: b}\n"))
case("ref_cycle_long", spec("".join(f"  n{i}: {{op: relu, in: n{i + 1}}}\n" for i in range(49)) + "  n49: {op: relu, in: n0}\n"))
case("ref_cycle_edges", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges: ['b -> a', 'a -> b']\n"))
case("ref_prev_outside_repeat", node("r: {op: relu, in: prev}"))
case("ref_index_out_of_range", spec("  l: {block: basic, repeat: 2, args: {out: 3}}\n  r: {op: relu, in: 'l[5]'}\n", before=BLOCK))
case("ref_index_not_repeat", spec("  a: {op: relu}\n  r: {op: relu, in: 'a[0]'}\n"))
case("ref_share_unknown", spec("  c: {op: conv, out: 3, k: 3}\n  d: {share: e}\n"))
case("ref_share_stateless", spec("  a: {op: relu}\n  d: {share: a}\n"))
case("ref_share_self", spec("  c: {op: conv, out: 3, k: 3}\n  d: {share: d}\n"))
case("ref_group_input_map", spec("  g: {nodes: {r: {op: relu}}, in: {a: x}}\n"))
case("ref_block_input_unknown", spec("  l: {block: basic, in: {inp: x}, args: {out: 3}}\n", before=BLOCK))
case("ref_block_inputs_count", spec("  a: {op: relu}\n  l: {block: basic, in: [a, x], args: {out: 3}}\n", before=BLOCK))
case("ref_block_input_missing", spec("  l: {block: up, in: {x: x}}\n", before="blocks:\n  up:\n    inputs: [x, skip]\n    nodes:\n      c: {op: concat, in: [x, skip]}\n"))
case("ref_no_input_two_inputs", spec("  r: {op: relu}\n", inputs="inputs: {a: [3, 8, 8], b: [3, 8, 8]}\n"))
case("ref_node_named_like_input", node("x: {op: relu}"))
case("ref_arity_add_one", node("s: {op: add, in: [x]}"))
case("ref_arity_relu_two", node("r: {op: relu, in: [x, x]}"))
case("ref_arity_lerp_two", node("l: {op: lerp, in: [x, x]}"))
case("ref_op_in_mapping", node("r: {op: relu, in: {a: x}}"))

case("ref_dense_two_inputs", spec("  a: {op: relu}\n  d: {block: dl, repeat: 2, connect: dense, in: [a, x]}\n",
                                  before="blocks:\n  dl:\n    inputs: [p, q]\n    nodes:\n      c: {op: concat, in: [p, q]}\n"))
case("ref_share_repeat", spec("  l: {block: basic, repeat: 2, args: {out: 3}}\n  m: {share: l}\n", before=BLOCK))
case("ref_group_output_unknown", node("g: {nodes: {r: {op: relu}}, output: nope}"))
case("ref_block_output_unknown", spec("  l: {block: b}\n", before="blocks:\n  b:\n    nodes: {r: {op: relu}}\n    output: nope\n"))
case("ref_edge_self_loop", spec("  a: {op: relu}\n  b: {op: relu}\n", after="edges: ['a -> a']\n"))
case("ref_concat_no_inputs", node("c: {op: concat, in: []}"))
case("ref_index_expr_range", spec("  l: {block: basic, repeat: 2, args: {out: 3}}\n  r: {op: relu, in: 'l[${1 + 2}]'}\n", before=BLOCK))
case("expr_in_when", node("r: {op: relu, when: '${nope > 1}'}"))
case("expr_block_param_default", spec("  l: {block: b}\n", before="blocks:\n  b:\n    params: [{w: $nope}]\n    nodes: {c: {op: conv, out: $w, k: 1}}\n"))
case("defaults_zero_out", spec("  c: {op: conv, k: 3}\n", before="defaults:\n  conv: {out: 0}\n"))
case("init_residual_int", spec("  r: {op: relu}\n", before="init: {zero_init_residual: 1}\n"))
case("shape_mul_no_broadcast", spec("  c: {op: conv, out: 4, k: 1}\n  m: {op: mul, in: [c, x]}\n"))
case("param_symbol_zero", spec("  r: {op: relu}\n", before="params: {H: 8}\n", inputs="inputs: {x: [3, H, 8]}\n"), "-p", "H=0")

# -- recursion in blocks ----------------------------------------------------------------
case("block_recursion_self", spec("  l: {block: a}\n", before="blocks:\n  a:\n    nodes:\n      inner: {block: a}\n"))
case("block_recursion_mutual", spec("  l: {block: a}\n", before="blocks:\n  a:\n    nodes:\n      inner: {block: b}\n  b:\n    nodes:\n      inner: {block: a}\n"))
chain_blocks = "blocks:\n" + "".join(f"  b{i}:\n    nodes:\n      inner: {{block: b{i + 1}}}\n" for i in range(20)) + "  b20:\n    nodes:\n      r: {op: relu}\n"
case("block_depth_limit", spec("  l: {block: b0}\n", before=chain_blocks))
case("block_depth_flag", spec("  l: {block: b0}\n", before=chain_blocks.replace("b20:", "b99:")
                             .replace("inner: {block: b3}", "r: {op: relu}")), "--max-block-depth", "2")
case("block_recursion_repeat", spec("  l: {block: a, repeat: 3}\n", before="blocks:\n  a:\n    nodes:\n      inner: {block: a, repeat: 2}\n"))

# -- includes ---------------------------------------------------------------------------
case("use_dotdot", spec("  r: {op: relu}\n", before="use: [../blocks.yaml]\n"))
case("use_dotdot_inside", spec("  r: {op: relu}\n", before="use: [sub/../../blocks.yaml]\n"))
case("use_absolute", spec("  r: {op: relu}\n", before="use: [/etc/passwd]\n"))
case("use_drive", spec("  r: {op: relu}\n", before="use: ['C:/x.yaml']\n"))
case("use_missing", spec("  r: {op: relu}\n", before="use: [_nope.yaml]\n"))
case("use_cycle", spec("  r: {op: relu}\n", before="use: [_cycle_a.yaml]\n"))
helpers["_cycle_a.yaml"] = "archspec: 1\nuse: [_cycle_b.yaml]\n"
helpers["_cycle_b.yaml"] = "archspec: 1\nuse: [_cycle_a.yaml]\n"
case("use_twice", spec("  r: {op: relu}\n", before="use: [_blocks_ok.yaml, _blocks_ok.yaml]\n"))
helpers["_blocks_ok.yaml"] = "archspec: 1\nblocks:\n  relu_block:\n    nodes:\n      r: {op: relu}\n"
case("use_depth", spec("  r: {op: relu}\n", before="use: [_chain_0.yaml]\n"))
for i in range(10):
    helpers[f"_chain_{i}.yaml"] = "archspec: 1\n" + (f"use: [_chain_{i + 1}.yaml]\n" if i < 9 else "")
case("use_depth_flag", spec("  r: {op: relu}\n", before="use: [_chain_7.yaml]\n"), "--max-include-depth", "1")
case("use_full_spec", spec("  r: {op: relu}\n", before="use: [_full_spec.yaml]\n"))
helpers["_full_spec.yaml"] = "archspec: 1\nname: other\ninputs: {x: [3, 8, 8]}\nnodes: {r: {op: relu}}\noutputs: [r]\n"
case("use_duplicate_block", spec("  r: {op: relu}\n", before="use: [_blocks_ok.yaml]\nblocks:\n  relu_block:\n    nodes:\n      r: {op: relu}\n"))
case("use_bad_yaml", spec("  r: {op: relu}\n", before="use: [_bad_yaml.yaml]\n"))
helpers["_bad_yaml.yaml"] = "archspec: 1\nblocks: {\n"
case("use_python_tag", spec("  r: {op: relu}\n", before="use: [_tagged.yaml]\n"))
helpers["_tagged.yaml"] = "archspec: 1\ndoc: !!python/object/apply:os.system [touch pwned]\n"

# -- limits: sizes checked before anything is built -------------------------------------
case("limit_repeat_billion", spec("  l: {block: basic, repeat: 1000000000, args: {out: 3}}\n", before=BLOCK))
case("limit_repeat_expr", spec("  l: {block: basic, repeat: '${10**9}', args: {out: 3}}\n", before=BLOCK))
case("limit_repeat_flag", spec("  l: {block: basic, repeat: 3, args: {out: 3}}\n", before=BLOCK), "--max-repeat", "2")
case("limit_nested_repeats", spec("  l: {block: outer, repeat: 1000}\n", before="blocks:\n  outer:\n    nodes:\n      inner: {block: leaf, repeat: 1000}\n  leaf:\n    nodes:\n      r: {op: relu}\n"))
case("limit_nodes_flag", spec("  l: {block: basic, repeat: 5, args: {out: 3}}\n", before=BLOCK), "--max-nodes", "10")
case("limit_channels_billion", node("c: {op: conv, out: 1000000000, k: 1}"))
case("limit_channels_flag", node("c: {op: conv, out: 64, k: 1}"), "--max-channels", "16")
case("limit_kernel_huge", node("c: {op: conv, out: 3, k: 1000000000}"))
case("limit_kernel_params", spec("  c: {op: conv, out: 64, k: [3000, 3000], padding: valid}\n", inputs="inputs: {x: [512, 3000, 3000]}\n"), "--max-elements", "10000000000")
case("limit_input_huge", spec("  r: {op: relu}\n", inputs="inputs: {x: [3, 100000, 100000]}\n"))
case("limit_input_flag", spec("  r: {op: relu}\n"), "--max-elements", "100")
case("limit_upsample_huge", node("u: {op: upsample, scale: 100000}"))
case("limit_linear_params", spec("  f: {op: flatten}\n  l: {op: linear, out: 100000000}\n"))
case("limit_params_flag", node("c: {op: conv, out: 8, k: 3}"), "--max-params", "100")
case("limit_bytes_flag", spec("  r: {op: relu}\n"), "--max-bytes", "64")
case("limit_string_flag", spec("  r: {op: relu}\n", before="doc: a fairly long description\n"), "--max-string", "8")
case("limit_int_digits_flag", node("c: {op: conv, out: 12345, k: 3}"), "--max-int-digits", "3")
case("limit_dense_channels", spec("  d: {block: dl, repeat: 1000, connect: dense}\n", before="blocks:\n  dl:\n    nodes:\n      c: {op: conv, out: 100, k: 1}\n"))

# -- names ------------------------------------------------------------------------------
case("name_starts_digit", node("1abc: {op: relu}"))
case("name_dash", node("a-b: {op: relu}"))
case("name_dotted", node("a.b: {op: relu}"))
case("name_keyword", node("for: {op: relu}"))
case("name_unicode", node("café: {op: relu}"))
case("name_forward", node("forward: {op: relu}"))
case("name_training", node("training: {op: relu}"))
case("name_state_dict", spec("  g: {nodes: {state_dict: {op: conv, out: 3, k: 1}}}\n"))
case("name_underscore", node("_hidden: {op: relu}"))
case("name_input_reserved", node("input: {op: relu}"))
case("name_prev_reserved", node("prev: {op: relu}"))
case("name_self_node", spec("  self: {op: conv, out: 3, k: 1}\n  b: {op: conv, out: 3, k: 1}\n"))
case("name_self_input", spec("  r: {op: relu}\n", inputs="inputs: {self: [3, 8, 8]}\n"))
case("name_torch_input", spec("  r: {op: relu}\n", inputs="inputs: {torch: [3, 8, 8]}\n"))
case("name_builtin_input", spec("  r: {op: relu}\n", inputs="inputs: {print: [3, 8, 8]}\n"))
case("name_inject_input", spec("  r: {op: relu}\n", inputs="inputs: {\"x): __import__('os').system('touch pwned') #\": [3, 8, 8]}\n"))
case("name_inject_node", spec("  \"r = __import__('os').system('touch pwned')\": {op: relu}\n", outputs="outputs: [x]\n"))
case("name_block_dash", spec("  r: {op: relu}\n", before="blocks:\n  my-block:\n    nodes: {r: {op: relu}}\n"))
case("name_block_inner_bad", spec("  l: {block: b}\n", before="blocks:\n  b:\n    nodes:\n      bad name: {op: relu}\n"))
case("name_repeat_pattern_inject", spec("  l: {block: basic, repeat: 2, names: \"x{i}');__import__('os').system('touch pwned')#\", args: {out: 3}}\n", before=BLOCK))
case("name_twice_after_expansion", spec("  l: {block: basic, repeat: 2, names: 'layer{i % 1}', args: {out: 3}}\n", before=BLOCK))

# -- shape errors -----------------------------------------------------------------------
case("shape_conv_on_vector", spec("  f: {op: flatten}\n  c: {op: conv, out: 3, k: 3}\n"))
case("shape_conv_groups", node("c: {op: conv, out: 4, k: 3, groups: 2}"))
case("shape_conv_kernel_big", node("c: {op: conv, out: 3, k: 9, padding: 0}"))
case("shape_conv_same_stride", node("c: {op: conv, out: 3, k: 3, padding: same, stride: 2}"))
case("shape_conv_k_rank", node("c: {op: conv, out: 3, k: [3, 3, 3]}"))
case("shape_convT_output_padding", node("c: {op: conv_transpose, out: 3, k: 2, stride: 2, output_padding: 2}"))
case("shape_convT_padding", node("c: {op: conv_transpose, out: 3, k: 1, padding: 8}"))
case("shape_pool_padding", node("p: {op: maxpool, k: 2, padding: 2}"))
case("shape_pool_kernel_big", node("p: {op: avgpool, k: 16}"))
case("shape_adaptive_size_rank", node("p: {op: adaptive_avgpool, size: [1, 1, 1]}"))
case("shape_add_policy_none", spec("  c: {op: conv, out: 4, k: 3}\n  s: {op: add, in: [c, x]}\n",
                                   before="defaults:\n  projection: {kind: none}\n"))
case("shape_add_rank", spec("  f: {op: flatten}\n  s: {op: add, in: [x, f]}\n"))
case("shape_add_upsample", spec("  p: {op: maxpool, k: 2}\n  s: {op: add, in: [p, x]}\n", outputs="outputs: [s]\n")
     .replace("  s: {op: add, in: [p, x]}", "  s: {op: add, in: [x, p]}"))
case("shape_add_ratio", spec("  c: {op: conv, out: 3, k: 3, padding: 0}\n  s: {op: add, in: [c, x]}\n"))
case("shape_add_ratios_differ", spec("  c: {op: conv, out: 3, k: 1, stride: [2, 4]}\n  s: {op: add, in: [c, x]}\n"))
case("shape_zero_pad_fewer", spec("  c: {op: conv, out: 2, k: 1}\n  s: {op: add, in: [c, x]}\n",
                                  before="defaults:\n  projection: {kind: zero_pad}\n"))
case("shape_concat_spatial", spec("  p: {op: maxpool, k: 2}\n  c: {op: concat, in: [x, p]}\n"))
case("shape_concat_dim", node("c: {op: concat, in: [x, x], dim: 3}"))
case("shape_concat_rank", spec("  f: {op: flatten}\n  c: {op: concat, in: [x, f]}\n"))
case("shape_flatten_start", node("f: {op: flatten, start: 5}"))
case("shape_flatten_order", node("f: {op: flatten, start: 2, end: 1}"))
case("shape_reshape_count", node("r: {op: reshape, shape: [5, 5]}"))
case("shape_reshape_two_infer", node("r: {op: reshape, shape: [-1, -1]}"))
case("shape_layernorm_dims", node("n: {op: layernorm, dims: 4}"))
case("shape_groupnorm", node("n: {op: groupnorm, groups: 2}"))
case("shape_upsample_bilinear_1d", spec("  u: {op: upsample, scale: 2, mode: bilinear}\n", inputs="inputs: {x: [3, 8]}\n"))
case("shape_upsample_to_zero", node("u: {op: upsample, scale: 0.01}"))
case("shape_upsample_scale_rank", node("u: {op: upsample, scale: [2, 2, 2]}"))
case("shape_softmax_dim", node("s: {op: softmax, dim: 3}"))
case("shape_share_channels", spec("  c: {op: conv, out: 4, k: 3}\n  d: {share: c, in: c}\n"))
case("shape_lerp", spec("  p: {op: maxpool, k: 2}\n  l: {op: lerp, in: [x, p, x]}\n"))
case("shape_bn_scalar_channels", spec("  b: {op: bn}\n", inputs="inputs: {x: [3, 2, 2, 2, 2]}\n"))
case("shape_in_block_instance", spec("  l: {block: basic, repeat: 2, args: {out: 4, stride: '${3 if i == 0 else 1}'}}\n",
                                     before=BLOCK.replace("stride: $stride}", "stride: $stride, padding: 0}"),
                                     inputs="inputs: {x: [3, 4, 4]}\n"))

# -- bounded cost (each used to run for minutes or gigabytes before failing, or never failed)
CUBE = "[[[1]*4096]*4096]*4096"
case("cost_expr_shared_lists_compared", node(f'c: {{op: conv, out: "${{3 if {CUBE} == {CUBE} else 4}}", k: 3}}'))
case("cost_expr_shared_lists_built", node('c: {op: conv, out: "${len([[1]*4096]*4096)}", k: 3}'))
case("cost_expr_format_width", node("c: {op: conv, out: \"${len('%999999999d' % 1)}\", k: 3}"))
case("cost_expr_format_list", node("c: {op: conv, out: \"${len('%s' % ([[1]*4096]*4096))}\", k: 3}"))
case("cost_expr_round_digits", node('c: {op: conv, out: "${round(1, -10**9)}", k: 3}'))
case("cost_expr_complex_power", node('c: {op: conv, out: "${int((-8) ** 0.5)}", k: 3}'))
# Each instance reads its i, so each evaluates the expression (identical instances are copied).
case("cost_expr_work_budget", spec("  s: {block: b, repeat: 1000}\n", before=(
    'params: {p: "${[[1]*64]*64}"}\nblocks:\n  b:\n    nodes:\n'
    '      r: {op: relu, when: "${i >= 0 and ' + " and ".join(["p == p"] * 20) + '}"}\n')))
case("cost_upsample_scale_overflow", node("u: {op: upsample, scale: 1e308}"))
case("cost_sizes_past_int_to_str", HEAD + "inputs: {x: [" + ", ".join(["9223372036854775807"] * 600) + "]}\n"
     "nodes:\n  r: {op: relu}\noutputs: [r]\n")
case("cost_size_search_many_nodes", HEAD + "inputs: {x: [3, H, W]}\nblocks:\n  b:\n    nodes:\n      r: {op: relu}\n"
     "nodes:\n  c: {op: conv, out: 8, k: 3, stride: 2}\n  s: {block: b, repeat: 1000}\n  t: {block: b, repeat: 1000}\n"
     "  u: {block: b, repeat: 999}\noutputs: [u]\n")
helpers["_small_blocks.yaml"] = "archspec: 1\nblocks:\n  b2:\n    nodes:\n      r: {op: relu}\n" + "#" * 200 + "\n"
case("cost_use_files_share_the_byte_limit", spec("  r: {op: relu}\n", before="use: [_blocks_ok.yaml, _small_blocks.yaml]\n"),
     "--max-bytes", "400")
# -- terminal and YAML 1.2 line breaks
case("terminal_escape_in_op", node('c: {op: "conv\\e]0;pwned\\a\\e]52;c;ZWNobw==\\a", out: 4, k: 3}'))
case("yaml12_separator_in_comment", HEAD + "# note \u2028 nodes: {}\ninputs: {x: [3, 8, 8]}\nnodes:\n"
     "  c: {op: conv, out: 4, k: 3, bogus: 1}\noutputs: [c]\n")


def write() -> None:
    CASES.mkdir(exist_ok=True)
    for old in CASES.glob("*.yaml"):
        old.unlink()
    for name, (text, _) in corpus.items():
        data = text if isinstance(text, bytes) else text.encode()
        (CASES / f"{name}.yaml").write_bytes(data)
    for name, text in helpers.items():
        (CASES / name).write_text(text)


def goldens() -> None:
    """Record what archspec answers for each case today (review before committing)."""
    from click.testing import CliRunner

    from archspec.cli import main

    out: dict[str, dict[str, object]] = {}
    runner = CliRunner()
    for name, (_, args) in corpus.items():
        path = CASES / f"{name}.yaml"
        res = runner.invoke(main, ["check", str(path), *args, "--json"], catch_exceptions=False)
        if res.exit_code != 2:
            print(f"{name}: exit {res.exit_code}, not 2\n{res.output}", file=sys.stderr)
            continue
        report = json.loads(res.stdout)
        entry: dict[str, object] = {k: report[k] for k in ("error", "line", "col", "message", "path")}
        if report["file"] not in (str(path), None):
            entry["file"] = Path(report["file"]).name
        if args:
            entry["args"] = args
        out[name] = entry
    EXPECTED.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(out)} goldens written to {EXPECTED}")


if __name__ == "__main__":
    write()
    print(f"{len(corpus)} cases and {len(helpers)} helper files in {CASES}")
    if "--goldens" in sys.argv:
        goldens()
