"""Every event the services exchange: topics, versioned payloads and the CloudEvents envelope.

This package is the one place event schemas live. A payload class names its CloudEvents
`type` (which carries the schema version, e.g. `...order_placed.v1`) and its topic; a
breaking change is a new class with the next version, and consumers accept both until the
old one has drained.
"""

from vuonminh.shared.events.access import WriteAudited
from vuonminh.shared.events.base import EventPayload, all_event_types, payload_class_for
from vuonminh.shared.events.catalog import (
    ListingPublished,
    ProductListed,
    ReservationProblem,
    ReservedLine,
    SellerRegistered,
    SellerRegisteredV2,
    StockAdjusted,
    StockReservationFailed,
    StockReserved,
)
from vuonminh.shared.events.envelope import Envelope, PoisonMessage, UnknownEventType
from vuonminh.shared.events.logistics import (
    DISPATCH_REQUESTED,
    DispatchRequested,
    GhnDispatchRequested,
    GhtkDispatchRequested,
    ShipmentDispatched,
    ShipmentDispatchedV2,
    ShipmentStatusChanged,
    ViettelPostDispatchRequested,
    VnpostDispatchRequested,
)
from vuonminh.shared.events.orders import (
    Buyer,
    BuyerAddress,
    BuyerAddressV2,
    BuyerV2,
    LivestreamScheduled,
    OrderCancelled,
    OrderConfirmed,
    OrderItem,
    OrderLine,
    OrderPlaced,
    OrderPlacedV2,
    OrderReceived,
    OrderReceivedV2,
    OrderRejected,
    OrderRejectedV2,
    OrderRejectedV3,
    OrderStatusChanged,
    PlatformItem,
    PlatformOrderNotified,
    RejectionReason,
    RejectionReasonV2,
)
from vuonminh.shared.events.topics import ALL_TOPICS, Topic, dead_letter_topic

__all__ = [
    "ALL_TOPICS",
    "Buyer",
    "BuyerAddress",
    "BuyerAddressV2",
    "BuyerV2",
    "Envelope",
    "EventPayload",
    "ListingPublished",
    "LivestreamScheduled",
    "OrderCancelled",
    "OrderConfirmed",
    "OrderItem",
    "OrderLine",
    "OrderPlaced",
    "OrderPlacedV2",
    "OrderReceived",
    "OrderReceivedV2",
    "OrderRejected",
    "OrderRejectedV2",
    "OrderRejectedV3",
    "OrderStatusChanged",
    "PlatformItem",
    "PlatformOrderNotified",
    "PoisonMessage",
    "ProductListed",
    "RejectionReason",
    "ReservationProblem",
    "ReservedLine",
    "RejectionReasonV2",
    "SellerRegistered",
    "SellerRegisteredV2",
    "StockAdjusted",
    "WriteAudited",
    "ShipmentDispatched",
    "ShipmentDispatchedV2",
    "ShipmentStatusChanged",
    "DISPATCH_REQUESTED",
    "DispatchRequested",
    "GhnDispatchRequested",
    "GhtkDispatchRequested",
    "ViettelPostDispatchRequested",
    "VnpostDispatchRequested",
    "StockReservationFailed",
    "StockReserved",
    "Topic",
    "UnknownEventType",
    "all_event_types",
    "dead_letter_topic",
    "payload_class_for",
]
