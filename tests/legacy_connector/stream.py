# Legacy style on purpose (this is how such connectors are written): no edits.
# ruff: noqa: UP008, UP032
import panoply
from panoply.errors import IncorrectParamError

PAGE = 3


class LegacyCRM(panoply.DataSource):
    def __init__(self, source, options):
        super(LegacyCRM, self).__init__(source, options)
        if not source.get("access_token"):
            raise IncorrectParamError("access_token is missing")
        self.since = source.get("lastTimeSucceed")
        self.pages = int(source.get("pages") or 2)
        self.page = 0
        self.sent_contacts = False

    def read(self):
        self.log("reading with password", self.source.get("pwd"))
        if not self.sent_contacts:
            self.sent_contacts = True
            contacts = [{"id": i, "since": self.since} for i in range(2)]
            return [panoply.to_record("legacy_contacts", contacts)]
        if self.page >= self.pages:
            return None
        first = self.page * PAGE
        self.page += 1
        self.progress(self.page, self.pages, "page {}".format(self.page))
        forms = self.source.get("forms") or []
        return [{"id": i, "form": forms[0] if forms else None, "since": self.since}
                for i in range(first, first + PAGE)]

    def close(self):
        self.log("closed")


Stream = LegacyCRM
