"""Pydantic models of the spec language (v1): frozen, ``extra="forbid"``, strict.

A node in ``nodes:`` is one of four kinds, told apart by its key: ``op:`` (an op from
the registry; the op name is the pydantic discriminator, so each op validates its own
attributes), ``block:`` (a call of a reusable block, possibly repeated), ``nodes:`` (an
inline group: a module scope) or ``share:`` (reuse another node's module).

Op attributes may hold ``$name``/``${...}`` expressions; those are checked for type
once evaluated, in the expand pass, against the op's strict ``Attrs`` model.

The models are built from the registry (each op contributes its attribute fields) and
rebuilt when an op is registered, so ``archspec.register_op`` reaches the schema too.
"""

# No `from __future__ import annotations`: pydantic reads these annotations at class
# creation inside `_build`, where the op union is a local.
import math
import re
from functools import lru_cache
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)

from .errors import ArchSpecError, SpecValidationError, UnknownOpError, close_matches
from .loader import Document
from .names import IDENT_PATTERN
from .ops import REGISTRY
from .ops.base import ATTR_DOCS
from .ops.merge import BIAS_DOC, KIND_DOC, NAME_DOC, ProjectionKind

Expr = Annotated[str, StringConstraints(pattern=r"^[^$]*\$")]
Name = Annotated[str, StringConstraints(pattern=IDENT_PATTERN)]
Scalar = Union[bool, int, float, str, None]
Param = Union[Scalar, list[Any], dict[Union[str, int], Any]]
# A block's input: a name, or {name: optional}; told apart by type, so a bad name is
# reported as one (not as "not a mapping").
BlockInput = Annotated[
    Union[Annotated[Name, Tag("name")], Annotated[dict[Name, Literal["optional"]], Tag("optional")]],
    Discriminator(lambda v: "optional" if isinstance(v, dict) else "name"),
]
# null: a block call leaves an optional input out.
InSpec = Union[str, list[Union[str, None]], dict[str, Union[str, None]]]


def _holds_expr(v: Any) -> bool:
    return isinstance(v, str) and "$" in v or isinstance(v, list) and any(_holds_expr(x) for x in v)


def _expr_list(v: Any) -> Any:
    """A list with an expression among its elements (``[$H, $W]``): the expand pass
    evaluates each element, then checks the list against the op's strict type."""
    if not _holds_expr(v):
        raise ValueError("no expression in the list")
    return v


ExprList = Annotated[list[Any], AfterValidator(_expr_list)]

def _version(v: Any) -> Any:
    """Only the integer 1: strict Literal[1] would let 1.0 through. (from_pydantic words the error.)"""
    if type(v) is not int:
        raise ValueError("not the integer 1")
    return v


Version = Annotated[Literal[1], BeforeValidator(_version)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)


class ProjectionPolicy(Strict):
    """How a residual ``add`` whose inputs cannot broadcast projects each input whose
    shape differs from input 0's; a merge's own ``projection:`` overrides it."""

    kind: ProjectionKind = Field(default="conv_bn", description=KIND_DOC)
    name: Name = Field(default="downsample", description=NAME_DOC)
    bias: bool = Field(default=False, description=BIAS_DOC)


class InitPolicy(Strict):
    """Weight initialisation after construction.

    ``scheme: default`` keeps PyTorch's constructors; ``kaiming_normal`` draws conv
    weights from N(0, 2/fan) (``mode``: the fan out, torchvision's ResNet, or in, its
    DenseNet) and sets norms to weight 1, bias 0. ``zero_init_residual`` zeroes the last
    norm of every residual branch; ``zero_linear_bias`` every linear layer's bias.
    """

    scheme: Literal["default", "kaiming_normal"] = Field(
        default="default", description="default: PyTorch's constructors; kaiming_normal: conv weights from N(0, 2/fan), "
                               "norms weight 1 and bias 0 (torchvision's ResNet and DenseNet).")
    mode: Literal["fan_out", "fan_in"] = Field(
        default="fan_out", description="The fan kaiming_normal divides by: fan_out (torchvision's ResNet) or fan_in "
                                       "(its DenseNet).")
    zero_init_residual: bool = Field(default=False, description="Zero the weight of the norm feeding input 0 of every "
                                                        "residual add, so each block starts as the identity.")
    zero_linear_bias: bool = Field(default=False, description="Zero the bias of every linear layer (torchvision's "
                                                              "DenseNet).")


class Assertion(Strict):
    """A condition on the params, checked before anything is built; its ``message`` is the error."""

    that: Union[bool, Expr] = Field(description="An expression of the params that must be true, e.g. "
                                                "'${depth in (18, 34, 50)}'.")
    message: str = Field(description="The error shown when it is false: say which values are allowed.")


IN_DOC = ("The node's inputs: a name, a list of names, or (for a block call) a mapping of the block's inputs "
          "to names. Default: the node above (the block's input for the first).")
WHEN_DOC = "Build this node only when true (an expression of the params); otherwise it passes its input on."
DOC_DOC = "Free text, shown in drawings and the generated model.py."


def _first_paragraph(op: Any) -> str:
    text = (op.doc or op.__doc__ or "").strip().split("\n\n")[0]
    return f"{op.name}: " + " ".join(text.split())


def _kind(v: Any) -> str | None:
    if isinstance(v, dict):
        for key, kind in (("op", "op"), ("block", "block"), ("nodes", "group"), ("share", "share")):
            if key in v:
                return kind
        return None
    return getattr(v, "kind", None)


def _op_model(op_name: str, *, partial: bool = False) -> type[BaseModel]:
    """A node model for one op: the common node keys plus the op's attributes, each of
    which may also be an expression string. ``partial``: attributes only, all optional
    (the model of ``defaults.<op>``)."""
    op = REGISTRY.get(op_name)
    fields: dict[str, Any] = {} if partial else {
        "op": (Literal[op_name], Field(..., description=_first_paragraph(op))),
        "in_": (Union[InSpec, None], Field(None, alias="in", description=IN_DOC)),
        "when": (Union[bool, Expr, None], Field(None, description=WHEN_DOC)),
        "doc": (str, Field("", description=DOC_DOC)),
    }
    for fname, finfo in op.Attrs.model_fields.items():
        ann = Annotated[(finfo.annotation, *finfo.metadata)] if finfo.metadata else finfo.annotation
        # Required attributes may come from `defaults:`, so the expand pass checks them.
        default = None if partial or finfo.is_required() else finfo.default
        # A list-valued attribute may hold expressions as elements ([$H, $W]).
        typ = Union[ann, Expr, ExprList] if _takes_list(ann) else Union[ann, Expr]
        fields[fname] = (typ, Field(default, description=finfo.description or ATTR_DOCS.get(fname)))
    model = create_model(
        f"{op_name}_defaults" if partial else f"{op_name}_node",
        __base__=Strict,
        __doc__=(op.__doc__ or "").strip() or None,
        **fields,
    )
    model.kind = "op"  # type: ignore[attr-defined]
    return model


def _takes_list(ann: Any) -> bool:
    """Whether an attribute's type admits a list (or tuple) value."""
    return any(w in repr(ann) for w in ("list[", "tuple[", "List[", "Tuple["))


@lru_cache(maxsize=64)
def _build(version: int, ops: tuple[str, ...] | None = None, defaults: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The spec models over the ops ``ops``, with ``defaults:`` entries for the ops
    ``defaults`` (None: every registered op)."""
    names = REGISTRY.names() if ops is None else [n for n in REGISTRY.names() if n in ops]
    with_defaults = REGISTRY.names() if defaults is None else [n for n in REGISTRY.names() if n in defaults]
    op_models = tuple(_op_model(n) for n in names)
    OpNode = Annotated[Union[op_models], Field(discriminator="op")]  # type: ignore[valid-type]

    class BlockCall(Strict):
        """A call of a block from ``blocks:``; ``repeat: N`` unrolls N instances."""

        kind: Literal["block"] = Field("block", exclude=True)
        block: str = Field(description="The block to call: a name from blocks: (or from a use: file), or an "
                                       "expression that gives one.")
        in_: Union[InSpec, None] = Field(None, alias="in", description=IN_DOC)
        args: dict[str, Param] = Field({}, description="Values of the block's params; in a repeat, expressions "
                                                       "may use i, the instance index.")
        repeat: Union[Annotated[int, Field(ge=1)], Expr] = Field(1, description="Unroll this many instances, "
                                                                               "named NAME.0, NAME.1, ...")
        connect: Literal["chain", "dense"] = Field("chain", description="chain: each instance reads the one "
                                                   "before; dense: each reads the concat of all before (DenseNet).")
        memory_efficient: Union[bool, Expr] = Field(
            False, description="Dense repeats only: recompute each instance's concat and the nodes up to its "
                               "first conv in backward instead of storing them (less memory, slower backward).")
        names: Union[str, None] = Field(None, description="Instance names of a repeat, an expression of i "
                                                           "(e.g. denselayer${i + 1}).")
        when: Union[bool, Expr, None] = Field(None, description=WHEN_DOC)
        doc: str = Field("", description=DOC_DOC)

    class Group(Strict):
        """An inline group: its own nodes under one module scope."""

        kind: Literal["group"] = Field("group", exclude=True)
        nodes: "Union[dict[str, NodeDef], list[NodeDef]]" = Field(  # noqa: F821
            description="The group's nodes, named under the group's scope; a list makes a sequential group (as "
                        "nn.Sequential): elements named 0, 1, ..., each reading the one before.")
        in_: Union[InSpec, None] = Field(None, alias="in", description=IN_DOC)
        edges: list[str] = Field([], description="Extra wiring as 'a -> b' lines, beside in:.")
        output: Union[str, None] = Field(None, description="The node whose output is the group's (default: the last).")
        when: Union[bool, Expr, None] = Field(None, description=WHEN_DOC)
        doc: str = Field("", description=DOC_DOC)

    class ShareNode(Strict):
        """Reuse the module(s) of another node: tied weights, Siamese branches."""

        kind: Literal["share"] = Field("share", exclude=True)
        share: str = Field(description="The node (or block call) whose modules this one reuses: tied weights.")
        in_: Union[InSpec, None] = Field(None, alias="in", description=IN_DOC)
        when: Union[bool, Expr, None] = Field(None, description=WHEN_DOC)
        doc: str = Field("", description=DOC_DOC)

    NodeDef = Annotated[
        Union[
            Annotated[OpNode, Tag("op")],
            Annotated[BlockCall, Tag("block")],
            Annotated[Group, Tag("group")],
            Annotated[ShareNode, Tag("share")],
        ],
        Discriminator(
            _kind,
            custom_error_type="node_kind",
            custom_error_message="a node needs one of the keys op:, block:, nodes: or share:",
        ),
    ]
    Group.model_rebuild(_types_namespace={"NodeDef": NodeDef})

    class Block(Strict):
        """A reusable sub-graph with parameters and named inputs."""

        params: list[Union[Name, dict[str, Param]]] = Field(
            [], description="The block's params: a name (required) or {name: default}; used as $name inside.")
        inputs: list[BlockInput] = Field(
            ["input"], description="Names of the block's inputs (default: one, 'input'); {name: optional} is an "
                                   "input a call may leave out (or pass null).")
        nodes: Union[dict[str, NodeDef], list[NodeDef]] = Field(
            description="The block's nodes; a list makes them sequential, named 0, 1, ...")
        edges: list[str] = Field([], description="Extra wiring as 'a -> b' lines, beside in:.")
        output: Union[str, None] = Field(None, description="The node whose output is the block's (default: the last).")
        doc: str = Field("", description=DOC_DOC)

    defaults_fields: dict[str, Any] = {"projection": (ProjectionPolicy, Field(
        ProjectionPolicy(), description="How a residual add whose inputs cannot broadcast projects an input "
                                        "whose shape differs from input 0's."))}
    for n in with_defaults:
        defaults_fields[n] = (Union[_op_model(n, partial=True), None], Field(
            None, description=f"Attribute defaults for every {n} node (a node's own value wins)."))
    Defaults = create_model("Defaults", __base__=Strict, **defaults_fields)

    class Spec(Strict):
        """A whole spec file."""

        archspec: Version = Field(description="The format version: 1.")
        name: str = Field(description="The model's name: its class name, and the stem of output files.")
        doc: str = Field("", description=DOC_DOC)
        params: dict[str, Param] = Field({}, description="Named values used as $name or in ${...} expressions; "
                                                         "override with -p name=value.")
        inputs: dict[str, list[Union[Annotated[int, Field(ge=1)], Name]]] = Field(
            description="Each input's per-sample shape, without the batch: [C, H, W]; a size may be a param or "
                        "a symbol (H) whose valid values check derives.")
        defaults: Defaults = Field(Defaults(), description="Attribute defaults per op (conv: {bias: false}), and "  # type: ignore[valid-type]
                                                           "the projection policy of residual merges.")
        init: InitPolicy = Field(InitPolicy(), description="Weight initialisation after construction.")
        use: list[str] = Field([], description="Block files to include: paths beside the spec, or archspec:NAME "
                                               "for the library shipped with archspec.")
        blocks: dict[str, Block] = Field({}, description="Reusable sub-graphs, called from nodes with block:.")
        nodes: Union[dict[str, NodeDef], list[NodeDef]] = Field(
            description="The graph: nodes in order; each reads the node above unless in: says otherwise. A list "
                        "is sequential (as nn.Sequential): elements named 0, 1, ...")
        edges: list[str] = Field([], description="Extra wiring as 'a -> b' lines, beside in:.")
        outputs: Union[list[str], str, dict[Name, str]] = Field(
            description="The node(s) whose outputs the model returns: one name (a tensor), a list (a tuple), or a "
                        "mapping of keys to names ({out: head}: a dict with those keys, in that order).")
        assert_: list[Assertion] = Field([], alias="assert", description="Conditions the params must satisfy, "
                                         "checked before anything is built: {that: '${depth in (18, 34)}', "
                                         "message: ...}.")

    class BlockFile(Strict):
        """A file of blocks for ``use:``."""

        archspec: Version = Field(description="The format version: 1.")
        doc: str = Field("", description=DOC_DOC)
        use: list[str] = Field([], description="Other block files to include (paths beside this one, or "
                                               "archspec:NAME).")
        blocks: dict[str, Block] = Field({}, description="The blocks this file offers to specs that use it.")

    return {"Spec": Spec, "Block": Block, "BlockFile": BlockFile, "NodeDef": TypeAdapter(NodeDef),
            "BlockCall": BlockCall, "Group": Group, "ShareNode": ShareNode}


def models(data: Any = None) -> dict[str, Any]:
    """The spec models for the registry as it is now; with ``data`` (a loaded document),
    models that know only the ops ``data`` names as ``op:``, with ``defaults:`` entries
    for the ops its ``defaults:`` names.

    Those validate ``data`` exactly as the full models do: an unknown op is reported from
    the registry, and a ``defaults:`` key that is no op is refused by both. Building a
    pydantic model per op and per op's defaults is most of a fresh ``check``; a spec uses
    a few of the ops."""
    REGISTRY.load_entry_points()
    if data is None:
        return _build(REGISTRY.version)
    known = set(REGISTRY.names())
    used = (_ops_named(data) | _defaults_named(data)) & known
    # A union needs one member: any op stands in for a document that names none.
    return _build(REGISTRY.version, tuple(sorted(used)) or (REGISTRY.names()[0],),
                  tuple(sorted(_defaults_named(data) & known)))


def _defaults_named(data: Any) -> set[str]:
    """The keys of ``data``'s ``defaults:``."""
    if isinstance(data, dict) and isinstance(data.get("defaults"), dict):
        return {k for k in data["defaults"] if isinstance(k, str)}
    return set()


def _ops_named(data: Any) -> set[str]:
    """Every ``op:`` value anywhere in ``data``."""
    found: set[str] = set()
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            op = v.get("op")
            if isinstance(op, str):
                found.add(op)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return found


def spec_model() -> type[BaseModel]:
    return models()["Spec"]


def json_schema(kind: Literal["spec", "library"] = "spec") -> dict[str, Any]:
    """The JSON Schema of the spec format (``kind="library"``: of a block-library file), for
    editors (yaml-language-server) and any JSON Schema validator.

    A node is matched to its kind by the key it has (``op:``, ``block:``, ``nodes:``,
    ``share:``) and an op node to its op by ``op:``'s value, with ``if``/``then`` rules:
    a plain validator then reports the problem inside that node (``stride: -1``), not
    "matches none of 33 alternatives". Every key has a description (an editor's hover).
    """
    model = models()["BlockFile" if kind == "library" else "Spec"]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "archspec block library (v1)" if kind == "library" else "archspec spec (v1)"
    return _for_editors(schema)


def _for_editors(schema: dict[str, Any]) -> dict[str, Any]:
    defs = schema.setdefault("$defs", {})
    ops = sorted(REGISTRY.names())
    defs["Node"] = {
        "type": "object",
        "description": "A node: an op (op:), a block call (block:), an inline group (nodes:) or a shared "
                       "module (share:).",
        "allOf": [
            # A node with none of the four keys: say the commonest one is missing.
            {"if": {"not": {"anyOf": [{"required": [k]} for k in ("op", "block", "nodes", "share")]}},
             "then": {"required": ["op"]}},
            {"if": {"required": ["op"]}, "then": {"properties": {"op": {"enum": ops}}}},
            *({"if": {"required": ["op"], "properties": {"op": {"const": name}}},
               "then": {"$ref": f"#/$defs/{name}_node"}} for name in ops),
            {"if": {"required": ["block"]}, "then": {"$ref": "#/$defs/BlockCall"}},
            {"if": {"required": ["nodes"]}, "then": {"$ref": "#/$defs/Group"}},
            {"if": {"required": ["share"]}, "then": {"$ref": "#/$defs/ShareNode"}},
        ],
    }

    def walk(node: Any, top: bool) -> Any:
        if isinstance(node, dict):
            if "additionalProperties" in node and _is_node_union(node["additionalProperties"]):
                node["additionalProperties"] = {"$ref": "#/$defs/Node"}
            if "items" in node and _is_node_union(node["items"]):  # a sequential nodes: list
                node["items"] = {"$ref": "#/$defs/Node"}
            props = node.get("properties")
            if isinstance(props, dict):
                tag = props.get("kind")
                if isinstance(tag, dict) and tag.get("const") in ("block", "group", "share"):
                    del props["kind"]  # the parser's own tag of a node kind, never written in a spec
                for p in props.values():
                    if isinstance(p, dict):
                        p.pop("title", None)
                        if "description" in p:
                            p.setdefault("markdownDescription", p["description"])
            for k, v in node.items():
                if k != "properties" or not isinstance(v, dict):
                    walk(v, False)
                else:
                    for pv in v.values():
                        walk(pv, False)
        elif isinstance(node, list):
            for v in node:
                walk(v, False)
        return node

    walk(schema, True)
    for name in ops:  # an editor's hover on `op: conv` is headed by the op's name
        defs[f"{name}_node"]["properties"]["op"]["title"] = name
    return schema


def _is_node_union(s: Any) -> bool:
    """pydantic's schema of a NodeDef: a oneOf of the op nodes and the other node kinds."""
    return isinstance(s, dict) and "oneOf" in s and any(
        isinstance(b, dict) and b.get("$ref") == "#/$defs/BlockCall" for b in s["oneOf"])


def validate(doc: Document, model: str = "Spec") -> Any:
    """Validate loaded YAML against a spec model; errors point at the YAML line."""
    if not isinstance(doc.data, dict):
        raise SpecValidationError(
            f"a spec must be a mapping at the top level, got {type(doc.data).__name__}",
            loc=doc.loc(()), source=doc.text, fix="start the file with 'archspec: 1'",
        )
    try:
        return models(doc.data)[model].model_validate(doc.data)
    except ValidationError as e:
        raise from_pydantic(e, doc, model=model) from None


def _alias_key(word: str) -> str:
    """``BatchNorm2d``, ``batch_norm``, ``batchnorm`` → ``batchnorm``: case, ``_`` and a
    trailing ``1d``/``2d``/``3d`` do not tell ops apart."""
    return re.sub(r"[123]d$", "", re.sub(r"[\W_]", "", word.lower()))


def _aliases_of_ops() -> dict[str, tuple[str, list[str]]]:
    """Alias key → (archspec op, the torch names it stands for), from each op's name and its
    reverse mapping ``torch_names`` (``torch.nn.BatchNorm2d`` → ``bn``)."""
    table: dict[str, tuple[str, list[str]]] = {}
    for name in REGISTRY.names():
        table.setdefault(_alias_key(name), (name, []))
    for name in REGISTRY.names():
        for qual in REGISTRY.get(name).torch_names:
            leaf = qual.rsplit(".", 1)[-1]
            op, quals = table.setdefault(_alias_key(leaf), (name, []))
            if op == name:
                quals.append(qual)
    return table


def _alias(word: str) -> tuple[str, list[str]] | None:
    return _aliases_of_ops().get(_alias_key(word)) if word else None


def op_hint(bad: str) -> str:
    """`` (did you mean 'bn'? it is archspec's op for torch.nn.BatchNorm2d)`` for a PyTorch
    name or common spelling of an op; else the close matches among the op names."""
    found = _alias(bad)
    if found is None or found[0] == bad:
        return close_matches(bad, REGISTRY.names())
    op, quals = found

    def flat(word: str) -> str:
        return re.sub(r"[\W_]", "", word.lower())

    if flat(bad) == flat(op) and not any(q.rsplit(".", 1)[-1] == bad for q in quals):
        return f" (did you mean '{op}'?)"  # the op's own name, spelled otherwise (Conv, max_pool)
    shown = [q for q in quals if flat(q.rsplit(".", 1)[-1]) == flat(bad)] or quals
    stems = {re.sub(r"[123]d$", "", q) for q in shown}
    if len(shown) > 1 and len(stems) == 1 and all(re.search(r"[123]d$", q) for q in shown):
        shown = [stems.pop() + "/".join(q[-2:] for q in shown)]  # torch.nn.BatchNorm1d/2d/3d
    return f" (did you mean '{op}'?" + (f" it is archspec's op for {', '.join(shown)})" if shown else ")")


def from_pydantic(e: ValidationError, doc: Document, base: tuple[str | int, ...] = (), model: str = "Spec") -> ArchSpecError:
    """The pydantic errors as ArchSpecErrors at their YAML positions: the most telling
    one, with one more per other place that has a problem (``err.errors``)."""
    errors = e.errors(include_url=False)
    # An unknown op or field says more than the type errors it causes.
    rank = {"union_tag_invalid": 0, "node_kind": 1, "extra_forbidden": 2}
    # `int | expression` fields fail twice; the expression branch's complaint is noise.
    errors = [x for x in errors if not (x["loc"] and x["loc"][-1] == "constrained-str")] or errors
    # A union (`in: name | [names] | {input: name}`) fails once per branch: the deepest
    # complaint is the most precise one (`in.0` over `in`), and the others are no extra problems.
    paths = [_data_path(doc.data, base + tuple(x["loc"])) for x in errors]

    def related(p: tuple[Any, ...], q: tuple[Any, ...]) -> bool:
        return p[:len(q)] == q or q[:len(p)] == p

    # One problem per place: the best-ranked error, then the best of those unrelated to it, ...
    remaining, picked = list(range(len(errors))), []
    while remaining:
        best = min(remaining, key=lambda i: (rank.get(errors[i]["type"], 3), -len(paths[i])))
        picked.append(best)
        remaining = [i for i in remaining if not related(paths[i], paths[best])]
    others = len(picked) - 1
    more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
    found = [_one_error(errors, paths, i, doc, model, more if k == 0 else "") for k, i in enumerate(picked)]
    rest = sorted(found[1:], key=lambda x: (x.loc.line, x.loc.col) if x.loc else (0, 0))
    return found[0].with_others(rest)


def _one_error(errors: list[Any], paths: list[tuple[Any, ...]], best: int, doc: Document, model: str,
               more: str) -> ArchSpecError:
    """The pydantic error ``errors[best]`` as an ArchSpecError at its YAML position."""
    err, path = errors[best], paths[best]
    where = ".".join(str(p) for p in path) or "<top>"
    etype = err["type"]
    kw: dict[str, Any] = {"path": where, "source": doc.text}
    if etype == "union_tag_invalid":
        bad = err["ctx"]["tag"]
        return UnknownOpError(f"unknown op '{bad}'{op_hint(bad)}{more}",
                              loc=doc.loc(path + ("op",)), fix="run `archspec ops` or `archspec docs ops` for the ops", **kw)
    if etype == "extra_forbidden":
        field = str(path[-1])
        allowed = [a for a in _allowed_fields(doc.data, path[:-1], model) if a != field]
        hint = close_matches(field, allowed) if allowed else ""
        if tuple(path[:-1]) == ("defaults",) and _alias(field) is not None:
            hint = op_hint(field)
        return SpecValidationError(f"unknown field '{field}'{hint}{more}", loc=doc.loc(path, key=True),
                                   expected=("one of: " + ", ".join(allowed)) if allowed else None, **kw)
    if etype == "missing":
        return SpecValidationError(f"missing required field '{path[-1]}'{more}", loc=doc.loc(path[:-1]), **kw)
    if etype == "node_kind":
        return SpecValidationError(f"node '{path[-1]}' needs one of the keys op:, block:, nodes: or share:{more}",
                                   loc=doc.loc(path), **kw)
    got = err.get("input")
    got_txt = repr(got) if not isinstance(got, (dict, list)) else type(got).__name__
    msg = err["msg"]
    kinds = list(dict.fromkeys(_TYPE_WORDS[x["type"]] for x, p in zip(errors, paths, strict=True)
                               if p == path and x["type"] in _TYPE_WORDS))
    if len(kinds) > 1:
        msg = f"expected {', '.join(kinds[:-1])} or {kinds[-1]}, got {_what(got)}"
    if etype == "bool_type" and isinstance(got, str) and got.lower() in ("yes", "no", "on", "off", "y", "n"):
        msg = f"expected true or false, got '{got}' (YAML 1.2: yes/no/on/off are strings)"
    elif isinstance(got, float) and not math.isfinite(got):
        msg = f"expected a finite number, got {got}"
    elif path == ("archspec",):
        msg = f"format version {got!r} is not supported; this archspec reads version 1"
    elif len(path) == 3 and path[0] == "inputs" and etype == "int_type":
        msg = f"an input size is a positive integer or a size name like H, got {got!r}"
    msg = re.sub(r" or instance of \w+$", "", msg)
    if etype == "string_pattern_mismatch" and path and isinstance(got, str):
        msg = f"'{got}' is not a valid name (letters, digits and '_', not starting with a digit)"
    return SpecValidationError(f"{where}: {msg}{more}", loc=doc.loc(path), got=got_txt, **kw)


_TYPE_WORDS = {"string_type": "a string", "list_type": "a list", "dict_type": "a mapping",
               "int_type": "an integer", "bool_type": "true or false", "float_type": "a number"}
# How pydantic names a union's branches in an error location (not keys of the data).
_BRANCH = re.compile(r"^(str|int|float|bool|none|constrained-\w+|(list|dict|tuple)\[.*\]|function-\w+.*|[A-Z]\w*Attrs)$")  # ...Attrs: a nested attribute model (add's projection)


def _what(v: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: f"{v!r}".lower(), type(None): "null"}.get(type(v), repr(v))


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Follow a pydantic error location through the data, dropping the union tags that
    pydantic puts in it: the node kind after a node's name, then the op name, and the
    branch names of ``int | expression`` fields after a scalar."""
    path: list[str | int] = []
    cur: Any = data
    parts = list(loc)
    in_nodes = False  # the previous key was 'nodes': the next part names a node
    while parts:
        part = parts.pop(0)
        if isinstance(part, str) and _BRANCH.match(part) and not (isinstance(cur, dict) and part in cur):
            continue  # a union branch's name, not a key
        key = "in" if part == "in_" else part
        path.append(key)
        if isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and isinstance(key, int) and 0 <= key < len(cur):
            cur = cur[key]
        else:
            break  # a missing or extra key: the path ends here
        if in_nodes and isinstance(cur, dict) and parts and parts[0] in ("op", "block", "group", "share"):
            tag = parts.pop(0)
            if tag == "op" and parts and parts[0] == cur.get("op"):
                parts.pop(0)
        in_nodes = key == "nodes"
        if not isinstance(cur, (dict, list)):
            break
    return tuple(path)


def _allowed_fields(data: Any, path: tuple[Any, ...], model: str = "Spec") -> list[str]:
    """The fields a mapping at ``path`` may have, for 'did you mean' hints."""
    cur = data
    for p in path:
        cur = cur[p] if isinstance(cur, (dict, list)) else None
    if not isinstance(cur, dict):
        return []
    m = models()
    if len(path) == 0:
        return _aliases(m[model])
    if tuple(path) == ("defaults",):
        return ["projection", *REGISTRY.names()]
    if tuple(path) == ("defaults", "projection"):
        return list(ProjectionPolicy.model_fields)
    if tuple(path) == ("init",):
        return list(InitPolicy.model_fields)
    if len(path) == 2 and path[0] == "assert":
        return list(Assertion.model_fields)
    if len(path) == 2 and path[0] == "defaults" and path[1] in REGISTRY:
        return list(REGISTRY.get(str(path[1])).Attrs.model_fields)
    if "op" in cur and isinstance(cur["op"], str) and cur["op"] in REGISTRY:
        return ["in", "when", "doc", "op", *REGISTRY.get(cur["op"]).Attrs.model_fields]
    if "block" in cur:
        return _aliases(m["BlockCall"])
    if "nodes" in cur and path and path[-2:-1] == ("blocks",):
        return _aliases(m["Block"])
    if "nodes" in cur:
        return _aliases(m["Group"])
    if "share" in cur:
        return _aliases(m["ShareNode"])
    return []


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items() if n != "kind"]
