"""Seeds a won deal in the sandbox's CRM and posts HubSpot's signed (v3) delivery of its stage change.

usage: hubspot_delivery.py SANDBOX_URL HOOK_URL CLIENT_SECRET
"""
import base64, hashlib, hmac, json, sys, time, urllib.request

sandbox, hook, secret = sys.argv[1:4]
deal = str(int(time.time()) % 1000000 + 1000)


def post(url, body, headers=None):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status


closed = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 600))
post(f"{sandbox}/_sandbox/hubspot/contacts", json.dumps([{"id": "c" + deal, "properties": {
    "email": "ada@example.com", "phone": "+44 844 412 4653", "firstname": "Ada", "lastname": "Lovelace", "city": "London", "zip": "SW1A 1AA", "country": "GB"}}]).encode())
post(f"{sandbox}/_sandbox/hubspot/deals", json.dumps([{"id": deal, "contacts": ["c" + deal], "properties": {
    "amount": "1250.00", "deal_currency_code": "EUR", "closedate": closed, "dealstage": "closedwon", "pipeline": "default"}}]).encode())
body = json.dumps([{"eventId": 1, "subscriptionId": 7, "portalId": 62515, "appId": 1, "occurredAt": int(time.time() * 1000),
                    "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": int(deal),
                    "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM"}], separators=(",", ":")).encode()
timestamp = str(int(time.time() * 1000))
signature = base64.b64encode(hmac.new(secret.encode(), b"POST" + hook.encode() + body + timestamp.encode(), hashlib.sha256).digest()).decode()
status = post(hook, body, {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": timestamp})
print(f"HubSpot delivery for deal {deal}: HTTP {status}")
