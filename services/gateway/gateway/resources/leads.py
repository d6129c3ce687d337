"""/api/leads: the Lead resource and its activity timeline."""
import falcon

from gateway.http import ignore_read_only, page, validate_body, validate_query
from gateway.openapi import operation
from gateway.schemas.contacts import Contact
from gateway.schemas.leads import (Activity, ActivityCreate, ActivityListQuery, Lead, LeadCreate,
                                   LeadListQuery, LeadUpdate)

ignore_read_only(LeadCreate, Lead)
ignore_read_only(LeadUpdate, Lead)
ignore_read_only(ActivityCreate, Activity)

# camelCase sort names of the API -> the service's snake_case names
SORT_NAMES = {"createdAt": "created_at", "updatedAt": "updated_at",
              "lastInteractionAt": "last_interaction_at"}


def to_service_sort(sort):
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    return ("-" if descending else "") + SORT_NAMES.get(name, name)


class Leads:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("List leads", query=LeadListQuery, response=Lead, many=True, tags=["leads"])
    def on_get(self, req, resp):
        query = validate_query(req, LeadListQuery)
        query["sort"] = to_service_sort(query["sort"])
        if query["status"]:
            query["status"] = query["status"].split(",")
        result = self.rpc(req, "leads", "list_leads", query)
        page(req, resp, result, query["limit"], query["offset"])

    @operation("Create a lead", body=LeadCreate, response=Lead, status=201, errors=("409",),
               tags=["leads"])
    def on_post(self, req, resp):
        lead = self.rpc(req, "leads", "create_lead", validate_body(req, LeadCreate))
        resp.status = falcon.HTTP_201
        resp.location = "/api/leads/%s" % lead["id"]
        resp.media = lead


class LeadItem:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Read a lead", response=Lead, errors=("404",), tags=["leads"])
    def on_get(self, req, resp, id):
        resp.media = self.rpc(req, "leads", "get_lead", id)

    @operation("Update a lead (partial); a status change is logged in the timeline",
               body=LeadUpdate, response=Lead, errors=("404", "409"), tags=["leads"])
    def on_patch(self, req, resp, id):
        resp.media = self.rpc(req, "leads", "update_lead", id, validate_body(req, LeadUpdate))

    @operation("Delete a lead", status=204, errors=("404",), tags=["leads"])
    def on_delete(self, req, resp, id):
        self.rpc(req, "leads", "delete_lead", id)
        resp.status = falcon.HTTP_204


class LeadActivity:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("A lead's timeline, newest first", query=ActivityListQuery, response=Activity,
               many=True, errors=("404",), tags=["leads"])
    def on_get(self, req, resp, id):
        query = validate_query(req, ActivityListQuery)
        result = self.rpc(req, "leads", "list_activity", id, query["limit"], query["offset"])
        page(req, resp, result, query["limit"], query["offset"])

    @operation("Log an activity on a lead", body=ActivityCreate, response=Activity, status=201,
               errors=("404",), tags=["leads"])
    def on_post(self, req, resp, id):
        activity = self.rpc(req, "leads", "log_activity", id, validate_body(req, ActivityCreate))
        resp.status = falcon.HTTP_201
        resp.location = "/api/leads/%s/activity" % id
        resp.media = activity


class LeadConversion:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Convert a lead into a contact: 201 with the new contact, or 200 with the "
               "contact already made from it (never two)", response=Contact, status=201,
               errors=("404", "422"), tags=["leads", "contacts"],
               other_responses={"200": ("The contact already made from this lead", Contact)})
    def on_post(self, req, resp, id):
        result = self.rpc(req, "leads", "convert_lead", id)
        contact = result["contact"]
        resp.status = falcon.HTTP_201 if result["created"] else falcon.HTTP_200
        resp.location = "/api/contacts/%s" % contact["id"]
        resp.media = contact
