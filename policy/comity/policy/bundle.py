"""Policy bundles: a folder of rules, schema, catalogue and tests, loaded and checked as one.

Layout of a bundle folder::

    bundle.toml            manifest: name, version, effective date, engine, scope
    schema.cedarschema     the Cedar schema every rule is validated against
    entities.json          (optional) per-country regime attributes, as Cedar entities
    rules/RULE_ID.cedar    one rule per file, annotated @id, @legal_basis, @public_message
    offences.toml          the offence catalogue of both parties
    justification.toml     what counts as boilerplate justification
    justification_cases.toml  (optional) the labelled set its threshold is tuned on
    minimisation.toml      what a node must withhold
    use_restrictions.toml  what every response carries
    tests.toml             the bundle's own test cases
    README.md              (optional) notes for people

Every file is read once into memory; the digest is computed over exactly those bytes
and everything is parsed from them, so the digest names what is enforced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import cedarpy

from comity.policy._toml import parse_table
from comity.policy.catalogue import OffenceCatalogue
from comity.policy.disclosure import Minimisation, UseRestriction, parse_minimisation, parse_use_restrictions
from comity.policy.errors import BundleError
from comity.policy.justification import JustificationStandard, LabelledSet
from comity.policy.rules import Rule, parse_rule, policy_set
from comity.policy.testcases import BundleTestCase, parse_cases, run_cases

__all__ = [
    "GenericRefusal",
    "Manifest",
    "PolicyBundle",
    "bundle_digest",
    "bundle_path",
    "bundle_roots",
    "folder_digest",
]

_REQUIRED = (
    "bundle.toml",
    "schema.cedarschema",
    "offences.toml",
    "justification.toml",
    "minimisation.toml",
    "use_restrictions.toml",
    "tests.toml",
)
_OPTIONAL = ("entities.json", "README.md", "justification_cases.toml")
_DIGEST_DOMAIN = b"comity/policy-bundle/v1\n"
SCOPES = ("gateway", "node")


@dataclass(frozen=True, slots=True)
class GenericRefusal:
    """The one answer given for rules whose reason must not reach the requester."""

    code: str
    message: str
    legal_basis: str
    rules: frozenset[str]
    """Rule ids answered with ``code`` (e.g. NO_TARGETING: the reason would reveal the target)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """``bundle.toml``: what the bundle is and where it applies."""

    name: str
    version: str
    effective: dt.date
    """The date from which the bundle states the law; loading can refuse it before then."""
    engine: str
    """Always ``"cedar"``."""
    cedar_major: int
    """The Cedar language major version the rules are written for (cedarpy's major)."""
    min_cedarpy: str
    """The oldest cedarpy release the bundle was tested with."""
    scope: str
    """``"gateway"`` (the agreement, both directions) or ``"node"`` (one node's inbound rules)."""
    country: str
    """For a node bundle: the responding country whose inbound rules it holds; else empty."""
    description: str
    generic: GenericRefusal
    parties: tuple[str, ...] = ()
    """The countries of the agreement the bundle is written for (ISO 3166-1 alpha-2), if it says;
    ``comity init`` pairs a gateway bundle with its parties' inbound bundles by them."""


def bundle_digest(files: dict[str, bytes]) -> str:
    """``sha256:<hex>`` over the files sorted by relative name, each name and content length-prefixed."""
    h = hashlib.sha256(_DIGEST_DOMAIN)
    for name in sorted(files):
        raw = name.encode("utf-8")
        h.update(len(raw).to_bytes(8, "big") + raw)
        h.update(len(files[name]).to_bytes(8, "big") + files[name])
    return "sha256:" + h.hexdigest()


def bundle_path(name: str) -> Path:
    """The folder of the bundle ``name``, in the installed wheel or in the source tree.

    Looks in ``comity/policy/bundles/NAME`` inside the installed package (the wheel
    force-includes ``policy/bundles`` there) and in ``policy/bundles/NAME`` of a source
    checkout (editable installs).

    Raises:
        BundleError: when ``name`` is not a plain folder name or no such bundle exists.
    """
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise BundleError(f"not a bundle name: {name!r}", hint="name a folder of policy/bundles/")
    for root in bundle_roots(Path(__file__).resolve().parent):
        if (root / name / "bundle.toml").is_file():
            return root / name
    raise BundleError(f"no policy bundle named {name!r}", hint="bundles live in policy/bundles/")


def bundle_roots(package_dir: Path) -> tuple[Path, ...]:
    """Where bundles are searched, given the folder of the ``comity.policy`` package."""
    return (package_dir / "bundles", package_dir.parent.parent / "bundles")


def folder_digest(root: Path) -> str:
    """The digest of the bundle in folder ``root``, from its files alone (nothing is parsed or run)."""
    return bundle_digest(_read_files(root))


def _read_files(root: Path) -> dict[str, bytes]:
    """Every file of the bundle, by relative name; refuses anything a bundle must not hold."""
    if not root.is_dir():
        raise BundleError("not a bundle folder", source=str(root))
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            # What is enforced must be what is in the folder the digest names.
            raise BundleError("symbolic links are not allowed in a bundle", source=rel)
        if path.is_dir():
            if rel != "rules":
                raise BundleError("unexpected folder in bundle (only rules/ is allowed)", source=rel)
            continue
        is_rule = rel.startswith("rules/") and rel.endswith(".cedar") and rel.count("/") == 1
        if not (rel in _REQUIRED or rel in _OPTIONAL or is_rule):
            raise BundleError("unexpected file in bundle; remove it or move it out", source=rel)
        try:
            files[rel] = path.read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot read: {exc.strerror}", source=rel) from None
    for rel in _REQUIRED:
        if rel not in files:
            raise BundleError("required file is missing", source=rel)
    return files


def _text(files: dict[str, bytes], rel: str) -> str:
    try:
        return files[rel].decode("utf-8")
    except UnicodeDecodeError:
        raise BundleError("not UTF-8 text", source=rel) from None


def _parse_manifest(text: str) -> Manifest:
    t = parse_table(text, source="bundle.toml")
    g = t.table("refusal")
    m = Manifest(
        name=t.text("name"),
        version=t.text("version"),
        effective=t.date("effective"),
        engine=t.text("engine"),
        cedar_major=t.integer("cedar_major", minimum=1),
        min_cedarpy=t.text("min_cedarpy"),
        scope=t.text("scope"),
        country=t.text("country", ""),
        description=t.text("description"),
        generic=GenericRefusal(
            code=g.text("generic_code"),
            message=g.text("generic_message"),
            legal_basis=g.text("generic_legal_basis"),
            rules=frozenset(g.texts("generic_rules", required=False)),
        ),
        parties=tuple(t.texts("parties", required=False)),
    )
    g.done()
    t.done()
    if m.engine != "cedar":
        raise t.error("engine", "must be cedar")
    if m.scope not in SCOPES:
        raise t.error("scope", f"must be one of {', '.join(SCOPES)}")
    if (m.scope == "node") != bool(m.country):
        raise t.error("country", "a node bundle names its country; a gateway bundle does not")
    if m.parties and (len(set(m.parties)) != len(m.parties) or len(m.parties) < 2):
        raise t.error("parties", "an agreement's parties are two or more distinct country codes")
    if m.parties and m.country and m.country not in m.parties:
        raise t.error("country", f"{m.country} is not one of the bundle's parties")
    _check_cedarpy(m, t.error)
    return m


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def _check_cedarpy(m: Manifest, error: Callable[[str, str], BundleError]) -> None:
    text = metadata.version("cedarpy")
    installed = _version(text)
    if installed[:1] != (m.cedar_major,):
        raise error("cedar_major", f"the bundle is for Cedar {m.cedar_major}; cedarpy {text} is installed")
    if installed < _version(m.min_cedarpy):
        raise error("min_cedarpy", f"needs cedarpy >= {m.min_cedarpy}; cedarpy {text} is installed")


class PolicyBundle:
    """A loaded, validated bundle: compiled Cedar handles plus the bundle's data.

    Build it with :meth:`load`; the constructor is for the loader only.
    """

    def __init__(
        self,
        *,
        path: Path,
        manifest: Manifest,
        digest: str,
        rules: tuple[Rule, ...],
        schema: cedarpy.Schema,
        policy_set: cedarpy.PolicySet,
        entities: cedarpy.Entities,
        catalogue: OffenceCatalogue,
        justification: JustificationStandard,
        minimisation: Minimisation,
        use_restrictions: tuple[UseRestriction, ...],
        tests: tuple[BundleTestCase, ...],
    ) -> None:
        self.path = path
        self.manifest = manifest
        self.digest = digest
        self.rules = rules
        self.schema = schema
        self.policy_set = policy_set
        self.entities = entities
        self.catalogue = catalogue
        self.justification = justification
        self.minimisation = minimisation
        self.use_restrictions = use_restrictions
        self.tests = tests
        self._by_id = {r.id: r for r in rules}

    @property
    def name(self) -> str:
        """The manifest's name."""
        return self.manifest.name

    @property
    def version(self) -> str:
        """The manifest's version."""
        return self.manifest.version

    @property
    def permit(self) -> Rule:
        """The bundle's one permit rule (its scope)."""
        return next(r for r in self.rules if r.effect == "permit")

    def rule(self, rule_id: str) -> Rule:
        """The rule with id ``rule_id``; KeyError if the bundle has none."""
        return self._by_id[rule_id]

    def __repr__(self) -> str:
        return f"PolicyBundle({self.name!r}, version={self.version!r}, digest={self.digest[:19]}…)"

    @classmethod
    def load(cls, path: Path | str, *, today: dt.date | None = None) -> PolicyBundle:
        """Read, validate and test the bundle in folder ``path``.

        Checked in order: the file set, the manifest (engine and version), the schema,
        each rule (one policy, annotations, id = file name), the policy set against the
        schema, the entities, the catalogue and data files, the generic-refusal rule ids,
        then the bundle's own tests. ``today``, when given, refuses a bundle whose
        effective date is later.

        Raises:
            BundleError: naming the file and what is wrong, or listing the failing tests.
        """
        root = Path(path)
        files = _read_files(root)
        manifest = _parse_manifest(_text(files, "bundle.toml"))
        if today is not None and manifest.effective > today:
            raise BundleError(
                f"not in effect before {manifest.effective}", field="effective", source="bundle.toml"
            )
        schema = _parse_schema(_text(files, "schema.cedarschema"))
        justification = JustificationStandard.parse(
            _text(files, "justification.toml"), source="justification.toml"
        )
        if "justification_cases.toml" in files:
            LabelledSet.parse(
                _text(files, "justification_cases.toml"), source="justification_cases.toml"
            ).check(justification)
        rules = tuple(parse_rule(_text(files, n), source=n) for n in sorted(files) if n.startswith("rules/"))
        _check_rules(rules, manifest, schema)
        bundle = cls(
            path=root,
            manifest=manifest,
            digest=bundle_digest(files),
            rules=rules,
            schema=schema,
            policy_set=policy_set(rules),
            entities=_parse_entities(
                _text(files, "entities.json") if "entities.json" in files else "[]", schema
            ),
            catalogue=OffenceCatalogue.parse(_text(files, "offences.toml"), source="offences.toml"),
            justification=justification,
            minimisation=parse_minimisation(_text(files, "minimisation.toml"), source="minimisation.toml"),
            use_restrictions=parse_use_restrictions(
                _text(files, "use_restrictions.toml"), source="use_restrictions.toml"
            ),
            tests=parse_cases(_text(files, "tests.toml"), source="tests.toml"),
        )
        failures = bundle.run_tests()
        if failures:
            listed = "\n  ".join(failures)
            raise BundleError(f"{len(failures)} bundle test(s) fail:\n  {listed}", source="tests.toml")
        return bundle

    def run_tests(self) -> list[str]:
        """Run the bundle's own test cases; one line per failure (empty: all pass)."""
        from comity.policy.engine import PolicyEngine  # the engine needs a bundle; import here

        forbid_ids = [r.id for r in self.rules if r.effect == "forbid"]
        return run_cases(PolicyEngine(self), self.tests, forbid_ids)


def _parse_schema(text: str) -> cedarpy.Schema:
    try:
        return cedarpy.Schema.from_str(text)
    except ValueError as exc:
        raise BundleError(f"not a valid Cedar schema: {exc}", source="schema.cedarschema") from None


def _check_rules(rules: tuple[Rule, ...], manifest: Manifest, schema: cedarpy.Schema) -> None:
    if sum(r.effect == "permit" for r in rules) != 1:
        raise BundleError("a bundle has exactly one permit rule (its scope)", source="rules/")
    if not any(r.effect == "forbid" for r in rules):
        raise BundleError("a bundle without forbid rules refuses nothing", source="rules/")
    unknown = manifest.generic.rules - {r.id for r in rules if r.effect == "forbid"}
    if unknown:
        raise BundleError(
            f"no forbid rule named {sorted(unknown)}", field="refusal.generic_rules", source="bundle.toml"
        )
    result = cedarpy.validate_policies("\n".join(r.source for r in rules), schema)
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        errors = "; ".join(f"{names.get(e.policy_id, e.policy_id)}: {e.error}" for e in result.errors)
        raise BundleError(f"rules do not validate against the schema: {errors}", source="rules/")


def _parse_entities(text: str, schema: cedarpy.Schema) -> cedarpy.Entities:
    try:
        return cedarpy.Entities.from_json_str(text, schema)
    except ValueError as exc:
        raise BundleError(f"entities do not match the schema: {exc}", source="entities.json") from None
