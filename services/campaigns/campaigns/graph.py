"""The campaigns service's view of the Graph API: one ad account's campaigns
and their daily insights (the HTTP mechanism is crm_common.graph)."""
from crm_common import graph as base
from crm_common.graph import (DEFAULT_GRAPH_URL, GraphError, GraphRefused,  # noqa: F401
                              GraphThrottled, GraphTransient, classify)


def account_path(account_id):
    account_id = str(account_id or "").strip()
    if not account_id:
        raise ValueError("META_AD_ACCOUNT_ID is not set")
    return account_id if account_id.startswith("act_") else "act_" + account_id


class GraphClient(base.GraphClient):
    def __init__(self, base_url, token, account_id, **kwargs):
        super().__init__(base_url, token, **kwargs)
        self.account = account_path(account_id)

    # ---- what the sync reads -------------------------------------------------

    def campaigns(self):
        return list(self.pages("%s/campaigns" % self.account,
                               {"fields": "id,name,status,objective", "limit": 500}))

    def insights(self, since=None, until=None):
        """Daily campaign-level insight rows: all of them (`date_preset=maximum`)
        when `since` is None, else the days `since`..`until` (dates)."""
        params = {"level": "campaign", "time_increment": 1, "limit": 500,
                  "fields": "campaign_id,spend,impressions,clicks,actions,action_values,date_start"}
        if since is None:
            params["date_preset"] = "maximum"
        else:
            params["time_range"] = '{"since":"%s","until":"%s"}' % (since.isoformat(),
                                                                     until.isoformat())
        return list(self.pages("%s/insights" % self.account, params))
