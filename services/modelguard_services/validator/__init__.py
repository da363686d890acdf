"""Edge validator: consumes predictions, dead-letters invalid ones, counts the rest.

The first vertical slice of modelguard: it proves the path producer -> Kafka -> validated
consumer -> dead-letter topic / Prometheus counters -> Prometheus scrape.
"""
