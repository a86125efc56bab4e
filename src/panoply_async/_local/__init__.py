"""The embedded SQS server behind :mod:`panoply_async.local`."""
