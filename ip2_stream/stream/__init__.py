"""Kafka streams: typed records, the embedded broker, validating consumers with dead-lettering."""
