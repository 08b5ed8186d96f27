import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_KIND_UNSPECIFIED: _ClassVar[QueryKind]
    HIT_CHECK: _ClassVar[QueryKind]
    FETCH: _ClassVar[QueryKind]
    PRIVATE_HIT_CHECK: _ClassVar[QueryKind]

class DataCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_CATEGORY_UNSPECIFIED: _ClassVar[DataCategory]
    SUBSCRIBER: _ClassVar[DataCategory]
    TRAFFIC: _ClassVar[DataCategory]
    CONTENT: _ClassVar[DataCategory]

class SelectorType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SELECTOR_TYPE_UNSPECIFIED: _ClassVar[SelectorType]
    EMAIL: _ClassVar[SelectorType]
    PHONE: _ClassVar[SelectorType]
    ACCOUNT_ID: _ClassVar[SelectorType]
    IP_ADDRESS: _ClassVar[SelectorType]
    DEVICE_ID: _ClassVar[SelectorType]
    FIREARM_SERIAL: _ClassVar[SelectorType]
    USERNAME: _ClassVar[SelectorType]
    IMEI: _ClassVar[SelectorType]
    VEHICLE_VIN: _ClassVar[SelectorType]

class TargetKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TARGET_KIND_UNSPECIFIED: _ClassVar[TargetKind]
    NATURAL_PERSON: _ClassVar[TargetKind]
    LEGAL_PERSON: _ClassVar[TargetKind]
QUERY_KIND_UNSPECIFIED: QueryKind
HIT_CHECK: QueryKind
FETCH: QueryKind
PRIVATE_HIT_CHECK: QueryKind
DATA_CATEGORY_UNSPECIFIED: DataCategory
SUBSCRIBER: DataCategory
TRAFFIC: DataCategory
CONTENT: DataCategory
SELECTOR_TYPE_UNSPECIFIED: SelectorType
EMAIL: SelectorType
PHONE: SelectorType
ACCOUNT_ID: SelectorType
IP_ADDRESS: SelectorType
DEVICE_ID: SelectorType
FIREARM_SERIAL: SelectorType
USERNAME: SelectorType
IMEI: SelectorType
VEHICLE_VIN: SelectorType
TARGET_KIND_UNSPECIFIED: TargetKind
NATURAL_PERSON: TargetKind
LEGAL_PERSON: TargetKind

class Signature(_message.Message):
    __slots__ = ("keyid", "sig")
    KEYID_FIELD_NUMBER: _ClassVar[int]
    SIG_FIELD_NUMBER: _ClassVar[int]
    keyid: str
    sig: bytes
    def __init__(self, keyid: _Optional[str] = ..., sig: _Optional[bytes] = ...) -> None: ...

class Envelope(_message.Message):
    __slots__ = ("payload_type", "payload", "signatures")
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURES_FIELD_NUMBER: _ClassVar[int]
    payload_type: str
    payload: bytes
    signatures: _containers.RepeatedCompositeFieldContainer[Signature]
    def __init__(self, payload_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., signatures: _Optional[_Iterable[_Union[Signature, _Mapping]]] = ...) -> None: ...

class Selector(_message.Message):
    __slots__ = ("type", "value")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    type: SelectorType
    value: str
    def __init__(self, type: _Optional[_Union[SelectorType, str]] = ..., value: _Optional[str] = ...) -> None: ...

class TimeRange(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Justification(_message.Message):
    __slots__ = ("facts", "link_to_offence")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    LINK_TO_OFFENCE_FIELD_NUMBER: _ClassVar[int]
    facts: str
    link_to_offence: str
    def __init__(self, facts: _Optional[str] = ..., link_to_offence: _Optional[str] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("query_id", "issued_at", "requesting_agency", "investigator", "target_node", "kind", "selectors", "categories", "time_range", "case_reference", "justification", "legal_order", "max_records", "hit_reference", "private_selectors", "order_reference", "filter_epoch", "private_precedent")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTING_AGENCY_FIELD_NUMBER: _ClassVar[int]
    INVESTIGATOR_FIELD_NUMBER: _ClassVar[int]
    TARGET_NODE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    LEGAL_ORDER_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_SELECTORS_FIELD_NUMBER: _ClassVar[int]
    ORDER_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FILTER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_PRECEDENT_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    issued_at: _timestamp_pb2.Timestamp
    requesting_agency: str
    investigator: str
    target_node: str
    kind: QueryKind
    selectors: _containers.RepeatedCompositeFieldContainer[Selector]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    time_range: TimeRange
    case_reference: str
    justification: Justification
    legal_order: Envelope
    max_records: int
    hit_reference: str
    private_selectors: _containers.RepeatedCompositeFieldContainer[PrivateSelector]
    order_reference: OrderReference
    filter_epoch: int
    private_precedent: PrivatePrecedent
    def __init__(self, query_id: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requesting_agency: _Optional[str] = ..., investigator: _Optional[str] = ..., target_node: _Optional[str] = ..., kind: _Optional[_Union[QueryKind, str]] = ..., selectors: _Optional[_Iterable[_Union[Selector, _Mapping]]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., time_range: _Optional[_Union[TimeRange, _Mapping]] = ..., case_reference: _Optional[str] = ..., justification: _Optional[_Union[Justification, _Mapping]] = ..., legal_order: _Optional[_Union[Envelope, _Mapping]] = ..., max_records: _Optional[int] = ..., hit_reference: _Optional[str] = ..., private_selectors: _Optional[_Iterable[_Union[PrivateSelector, _Mapping]]] = ..., order_reference: _Optional[_Union[OrderReference, _Mapping]] = ..., filter_epoch: _Optional[int] = ..., private_precedent: _Optional[_Union[PrivatePrecedent, _Mapping]] = ...) -> None: ...

class PrivatePrecedent(_message.Message):
    __slots__ = ("query_id", "salts")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SALTS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    salts: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, query_id: _Optional[str] = ..., salts: _Optional[_Iterable[bytes]] = ...) -> None: ...

class PrivateSelector(_message.Message):
    __slots__ = ("type", "commitment", "blinded_element")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    BLINDED_ELEMENT_FIELD_NUMBER: _ClassVar[int]
    type: SelectorType
    commitment: bytes
    blinded_element: bytes
    def __init__(self, type: _Optional[_Union[SelectorType, str]] = ..., commitment: _Optional[bytes] = ..., blinded_element: _Optional[bytes] = ...) -> None: ...

class OrderReference(_message.Message):
    __slots__ = ("order_id", "order_digest")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    order_digest: bytes
    def __init__(self, order_id: _Optional[str] = ..., order_digest: _Optional[bytes] = ...) -> None: ...

class SelectorOpening(_message.Message):
    __slots__ = ("selector", "salt", "blind")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    SALT_FIELD_NUMBER: _ClassVar[int]
    BLIND_FIELD_NUMBER: _ClassVar[int]
    selector: Selector
    salt: bytes
    blind: bytes
    def __init__(self, selector: _Optional[_Union[Selector, _Mapping]] = ..., salt: _Optional[bytes] = ..., blind: _Optional[bytes] = ...) -> None: ...

class PrivateOpenings(_message.Message):
    __slots__ = ("legal_order", "openings")
    LEGAL_ORDER_FIELD_NUMBER: _ClassVar[int]
    OPENINGS_FIELD_NUMBER: _ClassVar[int]
    legal_order: Envelope
    openings: _containers.RepeatedCompositeFieldContainer[SelectorOpening]
    def __init__(self, legal_order: _Optional[_Union[Envelope, _Mapping]] = ..., openings: _Optional[_Iterable[_Union[SelectorOpening, _Mapping]]] = ...) -> None: ...

class TargetAttestation(_message.Message):
    __slots__ = ("nationality", "residence", "location", "not_for_third_government")
    NATIONALITY_FIELD_NUMBER: _ClassVar[int]
    RESIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    NOT_FOR_THIRD_GOVERNMENT_FIELD_NUMBER: _ClassVar[int]
    nationality: str
    residence: str
    location: str
    not_for_third_government: bool
    def __init__(self, nationality: _Optional[str] = ..., residence: _Optional[str] = ..., location: _Optional[str] = ..., not_for_third_government: _Optional[bool] = ...) -> None: ...

class LegalOrder(_message.Message):
    __slots__ = ("order_id", "issuing_authority", "issuing_country", "offence_code", "authorised_by", "authorisation_type", "selectors", "categories", "valid_from", "valid_until", "max_records", "emergency", "attestation", "target")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUING_AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    ISSUING_COUNTRY_FIELD_NUMBER: _ClassVar[int]
    OFFENCE_CODE_FIELD_NUMBER: _ClassVar[int]
    AUTHORISED_BY_FIELD_NUMBER: _ClassVar[int]
    AUTHORISATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SELECTORS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    MAX_RECORDS_FIELD_NUMBER: _ClassVar[int]
    EMERGENCY_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    issuing_authority: str
    issuing_country: str
    offence_code: str
    authorised_by: str
    authorisation_type: str
    selectors: _containers.RepeatedCompositeFieldContainer[Selector]
    categories: _containers.RepeatedScalarFieldContainer[DataCategory]
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    max_records: int
    emergency: bool
    attestation: TargetAttestation
    target: TargetFacts
    def __init__(self, order_id: _Optional[str] = ..., issuing_authority: _Optional[str] = ..., issuing_country: _Optional[str] = ..., offence_code: _Optional[str] = ..., authorised_by: _Optional[str] = ..., authorisation_type: _Optional[str] = ..., selectors: _Optional[_Iterable[_Union[Selector, _Mapping]]] = ..., categories: _Optional[_Iterable[_Union[DataCategory, str]]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_records: _Optional[int] = ..., emergency: _Optional[bool] = ..., attestation: _Optional[_Union[TargetAttestation, _Mapping]] = ..., target: _Optional[_Union[TargetFacts, _Mapping]] = ...) -> None: ...

class TargetFacts(_message.Message):
    __slots__ = ("nationalities", "residences", "locations", "kind", "incorporated_in", "not_for_third_government")
    NATIONALITIES_FIELD_NUMBER: _ClassVar[int]
    RESIDENCES_FIELD_NUMBER: _ClassVar[int]
    LOCATIONS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    INCORPORATED_IN_FIELD_NUMBER: _ClassVar[int]
    NOT_FOR_THIRD_GOVERNMENT_FIELD_NUMBER: _ClassVar[int]
    nationalities: _containers.RepeatedScalarFieldContainer[str]
    residences: _containers.RepeatedScalarFieldContainer[str]
    locations: _containers.RepeatedScalarFieldContainer[str]
    kind: TargetKind
    incorporated_in: str
    not_for_third_government: bool
    def __init__(self, nationalities: _Optional[_Iterable[str]] = ..., residences: _Optional[_Iterable[str]] = ..., locations: _Optional[_Iterable[str]] = ..., kind: _Optional[_Union[TargetKind, str]] = ..., incorporated_in: _Optional[str] = ..., not_for_third_government: _Optional[bool] = ...) -> None: ...

class EmergencyValidation(_message.Message):
    __slots__ = ("order_id", "order_digest", "validating_authority", "confirmed", "decided_at")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_DIGEST_FIELD_NUMBER: _ClassVar[int]
    VALIDATING_AUTHORITY_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    order_digest: bytes
    validating_authority: str
    confirmed: bool
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, order_id: _Optional[str] = ..., order_digest: _Optional[bytes] = ..., validating_authority: _Optional[str] = ..., confirmed: _Optional[bool] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ValidateEmergencyRequest(_message.Message):
    __slots__ = ("signed_validation",)
    SIGNED_VALIDATION_FIELD_NUMBER: _ClassVar[int]
    signed_validation: Envelope
    def __init__(self, signed_validation: _Optional[_Union[Envelope, _Mapping]] = ...) -> None: ...

class ValidateEmergencyResponse(_message.Message):
    __slots__ = ("receipt",)
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    receipt: Receipt
    def __init__(self, receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("signed_query", "private_openings")
    SIGNED_QUERY_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_OPENINGS_FIELD_NUMBER: _ClassVar[int]
    signed_query: Envelope
    private_openings: PrivateOpenings
    def __init__(self, signed_query: _Optional[_Union[Envelope, _Mapping]] = ..., private_openings: _Optional[_Union[PrivateOpenings, _Mapping]] = ...) -> None: ...

class Record(_message.Message):
    __slots__ = ("record_id", "record_type", "category", "observed_at", "fields")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    OBSERVED_AT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    record_type: str
    category: DataCategory
    observed_at: _timestamp_pb2.Timestamp
    fields: _containers.ScalarMap[str, str]
    def __init__(self, record_id: _Optional[str] = ..., record_type: _Optional[str] = ..., category: _Optional[_Union[DataCategory, str]] = ..., observed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Mapping[str, str]] = ...) -> None: ...

class UseRestriction(_message.Message):
    __slots__ = ("code", "description", "legal_basis")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    legal_basis: str
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ..., legal_basis: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("signed_note",)
    SIGNED_NOTE_FIELD_NUMBER: _ClassVar[int]
    signed_note: bytes
    def __init__(self, signed_note: _Optional[bytes] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("leaf_index", "tree_size", "hashes")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    tree_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("first_size", "second_size", "hashes")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class EntryProof(_message.Message):
    __slots__ = ("entry", "inclusion")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    INCLUSION_FIELD_NUMBER: _ClassVar[int]
    entry: bytes
    inclusion: InclusionProof
    def __init__(self, entry: _Optional[bytes] = ..., inclusion: _Optional[_Union[InclusionProof, _Mapping]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("query_id", "query_digest", "node_statement", "entries", "checkpoint", "node_decision", "cosignatures")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    NODE_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    NODE_DECISION_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query_digest: bytes
    node_statement: Envelope
    entries: _containers.RepeatedCompositeFieldContainer[EntryProof]
    checkpoint: Checkpoint
    node_decision: Envelope
    cosignatures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, query_id: _Optional[str] = ..., query_digest: _Optional[bytes] = ..., node_statement: _Optional[_Union[Envelope, _Mapping]] = ..., entries: _Optional[_Iterable[_Union[EntryProof, _Mapping]]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., node_decision: _Optional[_Union[Envelope, _Mapping]] = ..., cosignatures: _Optional[_Iterable[str]] = ...) -> None: ...

class NodeStatement(_message.Message):
    __slots__ = ("node_id", "query_id", "query_digest", "hit", "record_count", "records_digest", "answered_at", "use_restrictions", "hit_reference", "sealed_reason", "evaluation_digest", "filter_epoch", "batch_digests")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    RECORD_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECORDS_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_AT_FIELD_NUMBER: _ClassVar[int]
    USE_RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    SEALED_REASON_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FILTER_EPOCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    query_id: str
    query_digest: bytes
    hit: bool
    record_count: int
    records_digest: bytes
    answered_at: _timestamp_pb2.Timestamp
    use_restrictions: _containers.RepeatedCompositeFieldContainer[UseRestriction]
    hit_reference: str
    sealed_reason: SealedReason
    evaluation_digest: bytes
    filter_epoch: int
    batch_digests: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, node_id: _Optional[str] = ..., query_id: _Optional[str] = ..., query_digest: _Optional[bytes] = ..., hit: _Optional[bool] = ..., record_count: _Optional[int] = ..., records_digest: _Optional[bytes] = ..., answered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., use_restrictions: _Optional[_Iterable[_Union[UseRestriction, _Mapping]]] = ..., hit_reference: _Optional[str] = ..., sealed_reason: _Optional[_Union[SealedReason, _Mapping]] = ..., evaluation_digest: _Optional[bytes] = ..., filter_epoch: _Optional[int] = ..., batch_digests: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SealedReason(_message.Message):
    __slots__ = ("scheme", "commitment")
    SCHEME_FIELD_NUMBER: _ClassVar[int]
    COMMITMENT_FIELD_NUMBER: _ClassVar[int]
    scheme: str
    commitment: bytes
    def __init__(self, scheme: _Optional[str] = ..., commitment: _Optional[bytes] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("query_id", "node_id", "hit", "hit_reference", "records", "use_restrictions", "truncated", "receipt", "witness_cosignature", "node_decision", "private_evaluation")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    USE_RESTRICTIONS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    WITNESS_COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    NODE_DECISION_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_EVALUATION_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    node_id: str
    hit: bool
    hit_reference: str
    records: _containers.RepeatedCompositeFieldContainer[Record]
    use_restrictions: _containers.RepeatedCompositeFieldContainer[UseRestriction]
    truncated: bool
    receipt: Receipt
    witness_cosignature: str
    node_decision: Envelope
    private_evaluation: PrivateEvaluation
    def __init__(self, query_id: _Optional[str] = ..., node_id: _Optional[str] = ..., hit: _Optional[bool] = ..., hit_reference: _Optional[str] = ..., records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ..., use_restrictions: _Optional[_Iterable[_Union[UseRestriction, _Mapping]]] = ..., truncated: _Optional[bool] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., witness_cosignature: _Optional[str] = ..., node_decision: _Optional[_Union[Envelope, _Mapping]] = ..., private_evaluation: _Optional[_Union[PrivateEvaluation, _Mapping]] = ...) -> None: ...

class PrivateEvaluation(_message.Message):
    __slots__ = ("epoch", "evaluated_elements", "proof")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EVALUATED_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    evaluated_elements: _containers.RepeatedScalarFieldContainer[bytes]
    proof: bytes
    def __init__(self, epoch: _Optional[int] = ..., evaluated_elements: _Optional[_Iterable[bytes]] = ..., proof: _Optional[bytes] = ...) -> None: ...

class PrivateFilterHeader(_message.Message):
    __slots__ = ("node_id", "selector_type", "category", "epoch", "public_key", "segment", "count", "inverse_fp_rate", "rice_bits", "index_interval", "data_digest", "issued_at", "expires_at", "day")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SELECTOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    INVERSE_FP_RATE_FIELD_NUMBER: _ClassVar[int]
    RICE_BITS_FIELD_NUMBER: _ClassVar[int]
    INDEX_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    DATA_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    selector_type: SelectorType
    category: DataCategory
    epoch: int
    public_key: bytes
    segment: int
    count: int
    inverse_fp_rate: int
    rice_bits: int
    index_interval: int
    data_digest: bytes
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    day: _timestamp_pb2.Timestamp
    def __init__(self, node_id: _Optional[str] = ..., selector_type: _Optional[_Union[SelectorType, str]] = ..., category: _Optional[_Union[DataCategory, str]] = ..., epoch: _Optional[int] = ..., public_key: _Optional[bytes] = ..., segment: _Optional[int] = ..., count: _Optional[int] = ..., inverse_fp_rate: _Optional[int] = ..., rice_bits: _Optional[int] = ..., index_interval: _Optional[int] = ..., data_digest: _Optional[bytes] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., day: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PrivateFilter(_message.Message):
    __slots__ = ("header", "data", "index")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    header: Envelope
    data: bytes
    index: bytes
    def __init__(self, header: _Optional[_Union[Envelope, _Mapping]] = ..., data: _Optional[bytes] = ..., index: _Optional[bytes] = ...) -> None: ...

class GetPrivateFiltersRequest(_message.Message):
    __slots__ = ("node", "epoch", "from_segment", "time_range")
    NODE_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FROM_SEGMENT_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    node: str
    epoch: int
    from_segment: int
    time_range: TimeRange
    def __init__(self, node: _Optional[str] = ..., epoch: _Optional[int] = ..., from_segment: _Optional[int] = ..., time_range: _Optional[_Union[TimeRange, _Mapping]] = ...) -> None: ...

class PrivateFilters(_message.Message):
    __slots__ = ("epoch", "filters")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    filters: _containers.RepeatedCompositeFieldContainer[PrivateFilter]
    def __init__(self, epoch: _Optional[int] = ..., filters: _Optional[_Iterable[_Union[PrivateFilter, _Mapping]]] = ...) -> None: ...

class RecordBatch(_message.Message):
    __slots__ = ("records",)
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[Record]
    def __init__(self, records: _Optional[_Iterable[_Union[Record, _Mapping]]] = ...) -> None: ...

class ResultChunk(_message.Message):
    __slots__ = ("records", "summary")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    records: RecordBatch
    summary: QueryResult
    def __init__(self, records: _Optional[_Union[RecordBatch, _Mapping]] = ..., summary: _Optional[_Union[QueryResult, _Mapping]] = ...) -> None: ...

class RuleViolation(_message.Message):
    __slots__ = ("code", "message", "legal_basis", "check")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    legal_basis: str
    check: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., legal_basis: _Optional[str] = ..., check: _Optional[str] = ...) -> None: ...

class PolicyDenial(_message.Message):
    __slots__ = ("query_id", "violations", "bundle_digest", "receipt", "node_decision")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    NODE_DECISION_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    violations: _containers.RepeatedCompositeFieldContainer[RuleViolation]
    bundle_digest: str
    receipt: Receipt
    node_decision: Envelope
    def __init__(self, query_id: _Optional[str] = ..., violations: _Optional[_Iterable[_Union[RuleViolation, _Mapping]]] = ..., bundle_digest: _Optional[str] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., node_decision: _Optional[_Union[Envelope, _Mapping]] = ...) -> None: ...

class GatewayDecision(_message.Message):
    __slots__ = ("query_id", "query_digest", "investigator", "order_id", "decision", "bundle_digest", "decided_at", "checked_blinded_elements", "order_facts")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    INVESTIGATOR_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    CHECKED_BLINDED_ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    ORDER_FACTS_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    query_digest: bytes
    investigator: str
    order_id: str
    decision: str
    bundle_digest: str
    decided_at: _timestamp_pb2.Timestamp
    checked_blinded_elements: _containers.RepeatedScalarFieldContainer[bytes]
    order_facts: LegalOrder
    def __init__(self, query_id: _Optional[str] = ..., query_digest: _Optional[bytes] = ..., investigator: _Optional[str] = ..., order_id: _Optional[str] = ..., decision: _Optional[str] = ..., bundle_digest: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., checked_blinded_elements: _Optional[_Iterable[bytes]] = ..., order_facts: _Optional[_Union[LegalOrder, _Mapping]] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("signed_query", "gateway_decision", "decision_entry", "checkpoint", "consistency", "report_witness_size", "more_consistency")
    SIGNED_QUERY_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_DECISION_FIELD_NUMBER: _ClassVar[int]
    DECISION_ENTRY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    REPORT_WITNESS_SIZE_FIELD_NUMBER: _ClassVar[int]
    MORE_CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    signed_query: Envelope
    gateway_decision: Envelope
    decision_entry: EntryProof
    checkpoint: Checkpoint
    consistency: ConsistencyProof
    report_witness_size: bool
    more_consistency: _containers.RepeatedCompositeFieldContainer[ConsistencyProof]
    def __init__(self, signed_query: _Optional[_Union[Envelope, _Mapping]] = ..., gateway_decision: _Optional[_Union[Envelope, _Mapping]] = ..., decision_entry: _Optional[_Union[EntryProof, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., consistency: _Optional[_Union[ConsistencyProof, _Mapping]] = ..., report_witness_size: _Optional[bool] = ..., more_consistency: _Optional[_Iterable[_Union[ConsistencyProof, _Mapping]]] = ...) -> None: ...

class NodeDecision(_message.Message):
    __slots__ = ("node_id", "query_id", "query_digest", "decision", "rule_codes", "bundle_digest", "decided_at", "sealed")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RULE_CODES_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    SEALED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    query_id: str
    query_digest: bytes
    decision: str
    rule_codes: _containers.RepeatedScalarFieldContainer[str]
    bundle_digest: str
    decided_at: _timestamp_pb2.Timestamp
    sealed: bytes
    def __init__(self, node_id: _Optional[str] = ..., query_id: _Optional[str] = ..., query_digest: _Optional[bytes] = ..., decision: _Optional[str] = ..., rule_codes: _Optional[_Iterable[str]] = ..., bundle_digest: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sealed: _Optional[bytes] = ...) -> None: ...

class OutboxItem(_message.Message):
    __slots__ = ("sequence", "node_decision", "node_statement")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    NODE_DECISION_FIELD_NUMBER: _ClassVar[int]
    NODE_STATEMENT_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    node_decision: Envelope
    node_statement: Envelope
    def __init__(self, sequence: _Optional[int] = ..., node_decision: _Optional[_Union[Envelope, _Mapping]] = ..., node_statement: _Optional[_Union[Envelope, _Mapping]] = ...) -> None: ...

class ListOutboxRequest(_message.Message):
    __slots__ = ("after", "limit")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after: int
    limit: int
    def __init__(self, after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class ListOutboxResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[OutboxItem]
    def __init__(self, items: _Optional[_Iterable[_Union[OutboxItem, _Mapping]]] = ...) -> None: ...

class AcknowledgeOutboxRequest(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sequences: _Optional[_Iterable[int]] = ...) -> None: ...

class AcknowledgeOutboxResponse(_message.Message):
    __slots__ = ("acknowledged",)
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    acknowledged: int
    def __init__(self, acknowledged: _Optional[int] = ...) -> None: ...

class GetWitnessStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WitnessState(_message.Message):
    __slots__ = ("tree_size", "root_hash")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: bytes
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("tree_size", "cosigned_by")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    COSIGNED_BY_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    cosigned_by: str
    def __init__(self, tree_size: _Optional[int] = ..., cosigned_by: _Optional[str] = ...) -> None: ...

class CheckpointResponse(_message.Message):
    __slots__ = ("checkpoint", "cosignatures", "log_size")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    cosignatures: _containers.RepeatedScalarFieldContainer[str]
    log_size: int
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., cosignatures: _Optional[_Iterable[str]] = ..., log_size: _Optional[int] = ...) -> None: ...

class AddCheckpointRequest(_message.Message):
    __slots__ = ("old_size", "consistency", "checkpoint")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    consistency: _containers.RepeatedScalarFieldContainer[bytes]
    checkpoint: Checkpoint
    def __init__(self, old_size: _Optional[int] = ..., consistency: _Optional[_Iterable[bytes]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class AddCheckpointResponse(_message.Message):
    __slots__ = ("cosignatures",)
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    cosignatures: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cosignatures: _Optional[_Iterable[str]] = ...) -> None: ...

class GetLatestCosignedRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetEntriesRequest(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("index", "data", "withheld", "leaf_hash")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    index: int
    data: bytes
    withheld: bool
    leaf_hash: bytes
    def __init__(self, index: _Optional[int] = ..., data: _Optional[bytes] = ..., withheld: _Optional[bool] = ..., leaf_hash: _Optional[bytes] = ...) -> None: ...

class GetEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("leaf_index", "leaf_hash", "tree_size")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    leaf_hash: bytes
    tree_size: int
    def __init__(self, leaf_index: _Optional[int] = ..., leaf_hash: _Optional[bytes] = ..., tree_size: _Optional[int] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("first_size", "second_size")
    FIRST_SIZE_FIELD_NUMBER: _ClassVar[int]
    SECOND_SIZE_FIELD_NUMBER: _ClassVar[int]
    first_size: int
    second_size: int
    def __init__(self, first_size: _Optional[int] = ..., second_size: _Optional[int] = ...) -> None: ...
