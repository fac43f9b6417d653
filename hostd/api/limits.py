"""The POS API's request limits (README "Limits"), in one place for every resource."""

MAX_BODY = 256 * 1024
MAX_BATCH_BODY = 8 * 1024 * 1024   # POST /api/v1/invoices/batch: up to 500 invoices
MAX_QUEUE = 64                     # requests waiting for the device before 429
BODY_TIMEOUT = 10.0                # seconds for a client to send its whole body once the headers are in
