"""A class on JupyterHub: every student's lab seen and reset from one page.

Two programs, each its own module:

- `server_extension`: in each student's Jupyter server, the lab's status and reset under the server's
  own URL (`/user/NAME/labkit/api/status`, `/user/NAME/labkit/api/reset`), admitted by JupyterHub;
- `class_page`: the instructors' page, a JupyterHub service (`python -m labkit.classroom.class_page`),
  which gathers every student's status concurrently (`gather`), with a token of that student's own for
  each request, reads each answer with suspicion (`reports`) and shows it (`page`).

deploy/jupyterhub/labkit_class.py enables both on a hub, with the roles and scopes they need.
"""
