-- wrk script: POST a small JSON body (a customer event).
wrk.method = "POST"
wrk.body = '{"id": 7, "name": "Ann Example", "email": "Ann@Example.com", "qty": 3, "active": true}'
wrk.headers["Content-Type"] = "application/json"
