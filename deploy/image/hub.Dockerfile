# The hub's image for a class on Zero to JupyterHub: the chart's own hub image, plus labkit for the
# class page (`python -m labkit.classroom.class_page`), a service the hub runs in its own pod.
# The tag is the chart's version: keep both the same (docs/instructors.md, "A class on Kubernetes").
#
#   docker build -f deploy/image/hub.Dockerfile -t REGISTRY/iam-roles-for-ec2-hub:1 .
#
# labkit goes in a virtual environment of its own, /opt/labkit, with its `hub` extra (the JupyterHub
# client library the page authenticates with): labkit's pinned versions never replace the hub's own.
# It holds no secret: the hub gives the page its token when it starts it.
FROM quay.io/jupyterhub/k8s-hub:4.3.3

USER root
# The hub's own JupyterHub: the chart's 5.4.4, raised to 5.5.4 (the same database schema and dependencies).
# 5.5.3 is the first 5.x that makes the class page the students' tokens (labkit_class.py, makes_student_tokens).
RUN python3 -m pip install --no-cache-dir --quiet 'jupyterhub==5.5.4'
COPY pyproject.toml constraints.txt README.md /tmp/iam-roles-for-ec2/
COPY labkit /tmp/iam-roles-for-ec2/labkit
RUN python3 -m venv /opt/labkit \
 && /opt/labkit/bin/pip install --no-cache-dir --quiet -c /tmp/iam-roles-for-ec2/constraints.txt '/tmp/iam-roles-for-ec2[hub]' \
 && rm -rf /tmp/iam-roles-for-ec2 \
 && chmod -R a+rX /opt/labkit

# the chart runs the hub as uid 1000 (jovyan), as its own image does
USER 1000
