"""A small exactly-once stream runtime on confluent-kafka's transactional producer.

Issue 4 proved that faust-streaming 0.15 loses credits when a worker is killed under
traffic (faust issues 177, 440, 517, and stalls in its flow control); topology.md records
why we moved every stage here instead. The shape is Kafka Streams' under exactly-once v2:
consume a batch, process it against local state, write outputs and the state's changelog
in one transaction with the consumed offsets (`send_offsets_to_transaction`), and only
then apply the batch's writes to the local store. Local state therefore never holds an
uncommitted write, and a worker that dies loses nothing a restart cannot restore.
"""
