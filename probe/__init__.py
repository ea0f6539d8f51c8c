"""sitevigil: an on-site network and endpoint probe for managed-services IT companies.

Data flows one way through the package:

    sources  ->  fast path  ->  state  ->  findings  ->  exposition
    (probe.sources) (probe.fastpath) (probe.state) (probe.findings) (probe.exposition)

Configuration (probe.config) is parsed once at the edge and handed inward as frozen values.
"""

__version__ = "0.1.0"
