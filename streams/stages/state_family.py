"""The family most stores belong to: one RocksDB and one changelog per partition,
`<app id>-state-changelog`, for every store that keeps its state for good. The webhook
dedup store keeps its own: its entries expire (a TTL and a deleting changelog)."""

STATE = "state"
