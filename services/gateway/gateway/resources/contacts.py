"""/api/contacts: the Contact resource and its history."""
import falcon

from gateway.http import ignore_read_only, page, validate_body, validate_query
from gateway.openapi import operation
from gateway.schemas.contacts import (Contact, ContactCreate, ContactListQuery, ContactUpdate,
                                      HistoryCreate, HistoryItem, HistoryListQuery)

ignore_read_only(ContactCreate, Contact)
ignore_read_only(ContactUpdate, Contact)
ignore_read_only(HistoryCreate, HistoryItem)

# camelCase sort names of the API -> the service's snake_case names
SORT_NAMES = {"createdAt": "created_at", "updatedAt": "updated_at",
              "lastContacted": "last_contacted"}


def to_service_sort(sort):
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    return ("-" if descending else "") + SORT_NAMES.get(name, name)


class Contacts:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("List contacts", query=ContactListQuery, response=Contact, many=True,
               tags=["contacts"])
    def on_get(self, req, resp):
        query = validate_query(req, ContactListQuery)
        query["sort"] = to_service_sort(query["sort"])
        result = self.rpc(req, "contacts", "list_contacts", query)
        page(req, resp, result, query["limit"], query["offset"])

    @operation("Create a contact", body=ContactCreate, response=Contact, status=201,
               tags=["contacts"])
    def on_post(self, req, resp):
        contact = self.rpc(req, "contacts", "create_contact", validate_body(req, ContactCreate))
        resp.status = falcon.HTTP_201
        resp.location = "/api/contacts/%s" % contact["id"]
        resp.media = contact


class ContactItem:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("Read a contact", response=Contact, errors=("404",), tags=["contacts"])
    def on_get(self, req, resp, id):
        resp.media = self.rpc(req, "contacts", "get_contact", id)

    @operation("Update a contact (partial)", body=ContactUpdate, response=Contact,
               errors=("404",), tags=["contacts"])
    def on_patch(self, req, resp, id):
        resp.media = self.rpc(req, "contacts", "update_contact", id,
                              validate_body(req, ContactUpdate))

    @operation("Delete a contact and its history", status=204, errors=("404",), tags=["contacts"])
    def on_delete(self, req, resp, id):
        self.rpc(req, "contacts", "delete_contact", id)
        resp.status = falcon.HTTP_204


class ContactHistory:
    def __init__(self, rpc):
        self.rpc = rpc

    @operation("A contact's history, newest first", query=HistoryListQuery, response=HistoryItem,
               many=True, errors=("404",), tags=["contacts"])
    def on_get(self, req, resp, id):
        query = validate_query(req, HistoryListQuery)
        result = self.rpc(req, "contacts", "list_history", id, query["limit"], query["offset"])
        page(req, resp, result, query["limit"], query["offset"])

    @operation("Log an interaction on a contact; it moves lastContacted", body=HistoryCreate,
               response=HistoryItem, status=201, errors=("404",), tags=["contacts"])
    def on_post(self, req, resp, id):
        item = self.rpc(req, "contacts", "log_history", id, validate_body(req, HistoryCreate))
        resp.status = falcon.HTTP_201
        resp.location = "/api/contacts/%s/history" % id
        resp.media = item
