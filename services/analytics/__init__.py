"""analytics: the KPIs officials follow, projected from order and shipment events."""
