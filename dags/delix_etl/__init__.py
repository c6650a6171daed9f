"""Plain-Python helpers of the example DAGs in this folder (paths, warehouse loads, report).

They are kept out of the DAG files so those stay short enough to read at a glance, and so the
loads and report queries can be unit-tested without running Airflow. Copy this folder along
with the DAG files; Airflow puts the DAGs folder on ``sys.path``, so ``import delix_etl`` works.
"""
